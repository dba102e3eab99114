"""Training of the project's own decoders/transformers (resumable, CPU bf16 or GPU)."""
