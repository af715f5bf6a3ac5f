"""Upload the adapter, or the merged model, with its card to the Hugging Face Hub.

The token is huggingface_hub's to find (``HF_TOKEN``, or the login cache of ``hf auth login``)
and is never read into anything tunetop writes. Each way the upload can fail is one line
with its fix.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from core.export.adapter import write_adapter
from core.export.common import ExportError, Progress, no_progress
from core.export.merge import dtype_name, load_merged, parse_size, write_merged
from core.export.source import resolve_source

LOGIN_FIX = "log in with `hf auth login` or set HF_TOKEN to a token with write access"


def push_to_hub(run_dir: str | Path, repo_id: str, *, private: bool = False, merge: bool = False,
                checkpoint: int | str | None = None, dtype: str | None = None,
                max_shard_size: str | int | None = None, api: Any = None,
                progress: Progress | None = None) -> str:
    """Create ``repo_id`` (``org/name``) if needed and upload the run's adapter, or with
    ``merge`` its merged model, with the model card; returns the repository's URL.

    ``api`` is an ``huggingface_hub.HfApi`` (one is made when ``None``; tests pass a fake).
    """
    import huggingface_hub
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    progress = progress or no_progress
    try:
        validate_repo_id(repo_id)
        if repo_id.count("/") != 1:
            raise HFValidationError("")
    except HFValidationError:
        raise ExportError(f"{repo_id!r} is not a Hub repository id. Fix: write it as ORG/NAME, "
                          "e.g. my-name/support-tickets-lora.") from None
    source = resolve_source(run_dir, checkpoint)
    if not merge and not source.is_adapter:
        raise ExportError(f"{source.run_dir} is a full fine-tune and has no adapter. Fix: push the "
                          "whole model with --merge.")
    dtype_name(dtype)
    if max_shard_size:
        parse_size(max_shard_size)
    if huggingface_hub.get_token() is None:
        raise ExportError(f"No Hugging Face token found. Fix: {LOGIN_FIX}.")
    if api is None:
        if huggingface_hub.is_offline_mode():
            raise ExportError("The Hub is switched off here (HF_HUB_OFFLINE is set). Fix: unset "
                              "HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) and try again.")
        api = huggingface_hub.HfApi()
    with tempfile.TemporaryDirectory(prefix="tunetop-push-") as tmp:
        folder = Path(tmp)
        if merge:
            merged = load_merged(source, dtype, progress)
            progress("saving the merged model", None)
            write_merged(merged, source, folder, max_shard_size, repo_id=repo_id)
        else:
            progress("copying the adapter", None)
            write_adapter(source, folder, repo_id=repo_id)
        progress(f"uploading to {repo_id}", None)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model",
                              commit_message=f"tunetop export of {source.run_dir.name} ({source.label})")
        except Exception as exc:  # the Hub client raises HTTP, network and OS errors alike
            raise ExportError(describe_hub_error(exc, repo_id)) from None
    progress("done", 1.0)
    return str(url) if url else f"https://huggingface.co/{repo_id}"


def describe_hub_error(exc: BaseException, repo_id: str) -> str:
    """One line for a failed upload: no permission, a rejected token, no network, or else."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    owner = repo_id.split("/")[0]
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(exc, HfHubHTTPError) and status is not None:
        if status == 401:
            return f"The Hub rejected the token (401 Unauthorized). Fix: {LOGIN_FIX}."
        if status == 403:
            return (f"The token may not create or write {repo_id} (403 Forbidden). Fix: use a token "
                    f"with write access to {owner}, or push to your own name.")
        if status == 404:
            return (f"The Hub has no {owner} you can write to (404). Fix: check the organisation "
                    "name, or push to your own name.")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"The Hub refused the upload ({status}): {first}. Fix: check {repo_id} on the Hub and try again."
    if isinstance(exc, (OfflineModeIsEnabled, ConnectionError, TimeoutError, OSError)) \
            or type(exc).__module__.startswith(("httpx", "httpcore", "requests", "urllib3")):
        return (f"Cannot reach the Hugging Face Hub ({type(exc).__name__}). Fix: check the network "
                "(and HF_ENDPOINT or a proxy if you use one), then try again.")
    return f"The upload to {repo_id} failed: {type(exc).__name__}: {exc}"
