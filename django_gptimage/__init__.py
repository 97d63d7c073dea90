"""django-gptimage: generate images with OpenAI's GPT Image models inside the Django admin."""

from __future__ import annotations

__version__ = "0.1.0"
