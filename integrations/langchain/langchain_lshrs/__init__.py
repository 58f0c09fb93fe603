"""LangChain integration of lshrs: a vector store, a retriever and sentence-transformers embeddings."""

from langchain_lshrs.embeddings import SentenceTransformerEmbeddings
from langchain_lshrs.retrievers import LSHRSRetriever
from langchain_lshrs.vectorstores import LSHRSVectorStore

__version__ = "1.0.0"

__all__ = ["LSHRSRetriever", "LSHRSVectorStore", "SentenceTransformerEmbeddings", "__version__"]
