"""Export a run to where models are used.

- :func:`export_adapter`: the PEFT adapter alone, with its tokenizer and model card.
- :func:`export_merged`: the adapter merged into its base, in the base's dtype, sharded.
- :func:`export_gguf`: a GGUF of the merged model for llama.cpp, LM Studio and Ollama, with
  an Ollama ``Modelfile`` beside it.
- :func:`push_to_hub`: the adapter or the merged model uploaded to the Hugging Face Hub.

Each takes a run directory (or a checkpoint folder, or ``checkpoint=N``), writes into a
temporary folder that is renamed into place at the end, reports its phase to an optional
``progress(phase, fraction)`` callback, and raises :class:`ExportError` with the fix.
"""

from core.export.adapter import export_adapter
from core.export.card import BUNDLED_HUB_ID, RunSummary, model_card, summarize_run
from core.export.common import ExportError, Progress
from core.export.gguf_file import OUTTYPES, GGUFExport, export_gguf
from core.export.hub import push_to_hub
from core.export.merge import DTYPES, export_merged, parse_size
from core.export.source import ExportSource, resolve_source

__all__ = [
    "BUNDLED_HUB_ID",
    "DTYPES",
    "ExportError",
    "ExportSource",
    "GGUFExport",
    "OUTTYPES",
    "Progress",
    "RunSummary",
    "export_adapter",
    "export_gguf",
    "export_merged",
    "model_card",
    "parse_size",
    "push_to_hub",
    "resolve_source",
    "summarize_run",
]
