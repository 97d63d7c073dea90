"""docs/settings.md, rendered from the declarations in :mod:`django_gptimage.conf`.

The page is generated, never edited by hand: change a key's default, meaning or text in conf.py
and run :data:`REGENERATE_COMMAND`. tests/test_conf.py fails while the committed page differs.
"""

from __future__ import annotations

import textwrap
from typing import Any

from .conf import SECTIONS, SETTINGS, Setting

REGENERATE_COMMAND = "python example_project/manage.py gptimage_settings --write-docs docs/settings.md"

_HEADER = f"""\
<!-- Generated from django_gptimage/conf.py: edit the declarations there, then run
     {REGENERATE_COMMAND}
     (tests/test_conf.py fails while this file differs from what conf.py renders). -->

# Settings

Everything is configured through one dict in your settings module. Every key is optional; the
defaults below give an offline provider (no key, no cost) in development and OpenAI as soon as an
API key is present.

```python
GPTIMAGE = {{
    "MODEL": "gpt-image-2",
    "ALLOWED_TIERS": ["1K", "2K"],
    "STORAGE": "default",
    "SPOOL_DIR": "/var/lib/mysite/gptimage-spool",
}}
```

Settings are read on every access (`django_gptimage.conf.gptimage_settings`, one typed property
per key), so `override_settings(GPTIMAGE={{...}})` and pytest-django's `settings` fixture work
without a restart. Unknown keys are reported by the system check `django_gptimage.E008`, values of
the wrong type by `E010`, and most wrong values by the other checks in [checks.md](checks.md).
`python manage.py gptimage_settings` prints the effective value of every key (the API key
masked) and where it comes from.

## Environment variables

| variable | used for | when |
|---|---|---|
| `OPENAI_API_KEY` | `API_KEY` | `GPTIMAGE["API_KEY"]` is not set (or empty) |
| `OPENAI_BASE_URL` | `BASE_URL` | `GPTIMAGE["BASE_URL"]` is not set (or empty) |

These are OpenAI's own names, so a key already exported for the `openai` SDK works unchanged. Keep
the key out of your settings file and out of version control: either rely on `OPENAI_API_KEY`, or
read it yourself (`"API_KEY": os.environ["MY_OPENAI_KEY"]`). The key is never logged, stored on
records or shown in check messages.
"""


def format_default(value: Any) -> str:
    """The default as Python source, so the docs show exactly what the code holds."""
    return repr(value)


def _wrap(text: str) -> str:
    """A paragraph wrapped like the hand-written pages (100 columns; code spans never split)."""
    return textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)


def _summary_table() -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, setting in SETTINGS.items():
        default = format_default(setting.default).replace("|", "\\|")
        meaning = setting.meaning.replace("|", "\\|")
        lines.append(f"| [`{name}`](#{name.lower()}) | {setting.kind} | `{default}` | {meaning} |")
    return "\n".join(lines) + "\n"


def render_setting(setting: Setting[Any]) -> str:
    """One key's section: heading, default and type, meaning, details, example."""
    parts = [
        f"### `{setting.name}`\n",
        _wrap(f"Default: `{format_default(setting.default)}`{setting.default_doc}. Type: {setting.kind}.")
        + "\n",
        _wrap(setting.meaning) + "\n",
    ]
    if setting.doc:
        parts.append(_wrap(setting.doc) + "\n")
    parts.append(f"```python\n{setting.example}\n```\n")
    return "\n".join(parts)


def render_markdown() -> str:
    """The whole of docs/settings.md."""
    out = [_HEADER, "\n## All keys\n\n", _summary_table()]
    for section, intro in SECTIONS.items():
        settings = [s for s in SETTINGS.values() if s.section == section]
        if not settings:
            continue
        out.append(f"\n## {section}\n")
        if intro:
            out.append(f"\n{_wrap(intro)}\n")
        for setting in settings:
            out.append("\n" + render_setting(setting))
    return "".join(out)
