"""The generative assistant over the curated marts: daily reports, guarded text-to-SQL,
fraud-alert explanations. Offline (no model) by default; Bedrock or an OpenAI-compatible
endpoint when configured."""
