"""Upload to the Hub through a fake ``HfApi``: what is uploaded, the card's metadata, one
clear line per failure, and no token in any file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.export import BUNDLED_HUB_ID, ExportError, push_to_hub

TOKEN = "hf_fakeTokenThatMustNeverBeWritten123"


class FakeHfApi:
    """Records ``create_repo`` and keeps a copy of the folder ``upload_folder`` was given."""

    def __init__(self, tmp_path: Path, error: BaseException | None = None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.uploaded = tmp_path / "uploaded"
        self.error = error

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        if self.error is not None:
            raise self.error
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        shutil.copytree(kwargs["folder_path"], self.uploaded)


@pytest.fixture
def token(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return TOKEN


def _files_hold(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_push_uploads_the_adapter_with_its_card_and_writes_no_token(bundled_run, token, tmp_path):
    from huggingface_hub import ModelCard

    api = FakeHfApi(tmp_path)
    url = push_to_hub(bundled_run, "me/support-lora", private=True, api=api)
    assert url == "https://huggingface.co/me/support-lora"
    (create, created), (upload, uploaded) = api.calls
    assert create == "create_repo" and created == {"repo_id": "me/support-lora", "private": True,
                                                   "exist_ok": True, "repo_type": "model"}
    assert upload == "upload_folder" and uploaded["repo_id"] == "me/support-lora"
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= {p.name for p in api.uploaded.iterdir()}
    card = ModelCard.load(api.uploaded / "README.md")
    assert card.data.base_model == BUNDLED_HUB_ID and card.data.library_name == "peft"
    assert 'from_pretrained("me/support-lora")' in card.text
    adapter_config = json.loads((api.uploaded / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == BUNDLED_HUB_ID  # not this machine's path
    assert not Path(uploaded["folder_path"]).exists()  # the staging folder is gone
    assert _files_hold(api.uploaded, token) == [] and _files_hold(bundled_run, token) == []


def test_push_with_merge_uploads_the_merged_model(bundled_run, token, tmp_path):
    from huggingface_hub import ModelCard

    api = FakeHfApi(tmp_path)
    push_to_hub(bundled_run, "me/support-merged", merge=True, api=api)
    assert (api.uploaded / "model.safetensors").is_file() and not (api.uploaded / "adapter_config.json").exists()
    assert ModelCard.load(api.uploaded / "README.md").data.library_name == "transformers"
    assert _files_hold(api.uploaded, token) == []


def _one_line(run, tmp_path, **kwargs) -> str:
    with pytest.raises(ExportError) as caught:
        push_to_hub(run, "me/x", **kwargs)
    message = str(caught.value)
    assert "\n" not in message and "Fix:" in message
    return message


def test_each_failure_is_one_line_with_its_fix(bundled_run, token, tmp_path, monkeypatch):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    def http_error(status):
        request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
        return HfHubHTTPError(f"{status} error", response=httpx2.Response(status, request=request))

    assert "403" in _one_line(bundled_run, tmp_path, api=FakeHfApi(tmp_path, http_error(403)))
    assert "rejected the token" in _one_line(bundled_run, tmp_path, api=FakeHfApi(tmp_path, http_error(401)))
    assert "Cannot reach" in _one_line(bundled_run, tmp_path, api=FakeHfApi(tmp_path, ConnectionError("down")))
    with pytest.raises(ExportError, match="ORG/NAME"):
        push_to_hub(bundled_run, "no-slash", api=FakeHfApi(tmp_path))
    monkeypatch.delenv("HF_TOKEN")
    api = FakeHfApi(tmp_path)
    assert "No Hugging Face token" in _one_line(bundled_run, tmp_path, api=api)
    assert api.calls == []
