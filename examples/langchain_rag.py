"""A RAG chain with lshrs as the retrieval step: documents -> LSHRSVectorStore -> retriever | prompt | model.

Runs offline: Wikipedia passages from the dump slice in gensim's wheel, MiniLM
embeddings from the offline model package, and langchain-core's fake chat
model standing in for an LLM (it echoes its prompt, so the answer shows what
the retriever put in front of the model). Swap in any chat model for real
answers. Without REDIS_URL it uses the embedded Redis under ./lshrs_data.

    .venv/bin/python examples/langchain_rag.py
"""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from langchain_lshrs import LSHRSVectorStore
from lshrs.cli import demo_dump
from lshrs.passages import split
from lshrs.wikipedia import read_articles

ARTICLES = 12
QUESTION = "Why do snow and ice reflect so much sunlight?"

PROMPT = ChatPromptTemplate.from_template(
    "Answer from the context only.\n\nContext:\n{context}\n\nQuestion: {question}"
)


def wikipedia_documents(limit: int) -> list[Document]:
    """Passages of the first `limit` articles, each with its title and a stable id."""
    docs = []
    for number, article in enumerate(read_articles(demo_dump())):
        if number == limit:
            break
        for passage in split(article):
            docs.append(Document(id=str(passage.id), page_content=passage.text, metadata={"title": passage.title}))
    return docs


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(f"[{d.metadata['title']}] {d.page_content}" for d in docs)


def main() -> None:
    store = LSHRSVectorStore(name="langchain-example")
    docs = wikipedia_documents(ARTICLES)
    store.add_documents(docs)  # ids are stable, so a re-run replaces instead of duplicating
    print(f"{len(docs)} passages in {store.lsh}")

    retriever = store.as_retriever(search_kwargs={"k": 3})
    print(f"\nQuestion: {QUESTION}\nRetrieved:")
    for doc, score in store.similarity_search_with_relevance_scores(QUESTION, k=3):
        print(f"  {score:.3f} [{doc.metadata['title']}] {doc.page_content[:100]}...")

    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | PROMPT
    answer = (chain | ParrotFakeChatModel() | StrOutputParser()).invoke(QUESTION)
    print(f"\nAnswer: (the fake model echoes its prompt)\n{answer[:600]}...")


if __name__ == "__main__":
    main()
