"""The tracehive server: OTLP ingest, the query API and the dashboard."""
