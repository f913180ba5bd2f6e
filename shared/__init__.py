"""What every service shares, in rooms: ``contracts`` (events, topics, schemas, the upstream
SDK), ``kafka`` (broker, admin, faust, deliveries), ``store`` (the vector store), ``models``
(embedder), beside settings, logs, http, redaction and the CLI's base."""
