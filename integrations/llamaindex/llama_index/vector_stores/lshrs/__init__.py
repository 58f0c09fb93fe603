"""LlamaIndex vector store on lshrs: LSH buckets in Redis, nodes in SQLite or Postgres."""

from llama_index.vector_stores.lshrs.base import LSHRSVectorStore
from llama_index.vector_stores.lshrs.embeddings import SentenceTransformerEmbedding

__all__ = ["LSHRSVectorStore", "SentenceTransformerEmbedding"]
