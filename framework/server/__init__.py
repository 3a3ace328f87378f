"""`zooinfer serve`: an OpenAI-compatible and LightLLM-native HTTP server on one LLMEngine."""
