"""The platform's services, one package each, wired to each other only through Kafka topics."""
