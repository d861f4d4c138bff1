"""Model providers: the protocol, the OpenAI-compatible client, the local model."""
