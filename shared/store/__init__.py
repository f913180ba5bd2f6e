"""The vector store: one interface (``base``), its BM25 tokenizer (``bm25``), two backends
(``edge`` embedded, ``client`` a Qdrant server), opening one by settings (``open``), what text
a chunk is indexed by (``text``) and retrieval over it (``retrieval``). Only ``open`` imports a
backend."""
