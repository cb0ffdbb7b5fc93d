"""The one code path by which real suites read hub data and hub models: the hub (through its local cache) or a mirror.

Data. Every file a suite needs is named by a :class:`HubFile` (repository, path in it, where it is hosted) and read
by :func:`load_json`, which resolves it to a local file and hands that to ``datasets.load_dataset("json", ...)``:

- with ``data_dir`` set, from a local mirror of the hub layout: ``<data_dir>/<repo>/<path>``, for example
  ``<data_dir>/tatsu-lab/alpaca_farm/alpaca_instructions/sft.json``;
- otherwise from the Hugging Face hub through its local cache (``hf_hub_download``), or, for data that only lives
  in a GitHub repository, from ``raw.githubusercontent.com`` through the ``datasets`` download cache.

Why files and not ``load_dataset("<repo>", "<config>")``: the hub datasets the paper used (``tatsu-lab/alpaca_farm``,
``tatsu-lab/alpaca_eval``, ``princeton-nlp/LLMBar``) are loading scripts, which ``datasets`` 4 and later refuse to
run ("Dataset scripts are no longer supported"). Their data files are plain JSON, so reading the files is both what
still works and what a mirror can reproduce exactly.

Models. :func:`resolve_model` turns ``model.base`` (a local checkpoint dir or a hub model id) into a local checkpoint
dir with a chat template and a pad token, which every stage of the harness needs (base LMs such as LLaMA-7B ship
neither; they get AlpacaFarm's prompt format, the one the paper trained with).

Failures are one line (:class:`harness.core.errors.ConfigError`, which the command line turns into exit status 2) naming
the dataset or model that needs the hub, and saying so when ``HF_HUB_OFFLINE`` is set: with it set a missing file
fails at once instead of after the hub client's retries.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

from datasets import (
    Dataset,
    DownloadConfig,
    DownloadManager,
    Json,
    are_progress_bars_disabled,
    disable_progress_bars,
    enable_progress_bars,
    load_dataset,
)
from datasets import config as datasets_config
from datasets.exceptions import DatasetGenerationError
from datasets.utils import logging as datasets_logging
from huggingface_hub import hf_hub_download, is_offline_mode, snapshot_download
from huggingface_hub.errors import HfHubHTTPError
from transformers import AutoTokenizer

from harness.core.errors import ConfigError
from harness.core.publish import publish_dir

# AlpacaFarm's prompt for an instruction without input (examples/prompts/v0_inputs_noinputs.json in
# tatsu-lab/alpaca_farm), as a chat template: the response follows "### Response:" directly and ends with eos, as in
# AlpacaFarm's SFT targets. Instructions that had an input arrive with it merged in (see the alpacafarm suite).
ALPACA_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\\n\\n### Instruction:\\n' + message['content'] + '\\n\\n### Response:' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{%- else -%}"
    "{{ raise_exception('the Alpaca prompt format has the roles user and assistant only, got ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

# What a model download fetches: config, tokenizer and safetensors weights (a repo that also ships .bin copies would
# otherwise be fetched twice over; .bin is fetched only when there is no safetensors file).
_MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
_PREPARED_MARK = ".chat-ready"


@dataclass(frozen=True)
class HubFile:
    """One data file of a public repository, as a suite reads it.

    Attributes:
        repo: ``owner/name``; also the first two levels of its place in a local mirror.
        path: the file's path inside the repository.
        host: ``"hf"`` for a Hugging Face dataset repository, ``"github"`` for a GitHub one.
        revision: branch, tag or commit to read (pin a commit for a GitHub file: its URL is cached forever).
    """

    repo: str
    path: str
    host: Literal["hf", "github"] = "hf"
    revision: str = "main"

    def __str__(self) -> str:
        return f"{self.repo} ({self.path})"

    def url(self) -> str:
        """Where the file is fetched from when there is no mirror."""
        if self.host == "github":
            return f"https://raw.githubusercontent.com/{self.repo}/{self.revision}/{self.path}"
        return f"https://huggingface.co/datasets/{self.repo}/resolve/{self.revision}/{self.path}"


def mirror_path(file: HubFile, data_dir: str | Path) -> Path:
    """Where a local mirror keeps ``file``: ``<data_dir>/<repo>/<path>``."""
    return Path(data_dir).expanduser() / file.repo / file.path


def resolve_file(file: HubFile, data_dir: str | Path | None, who: str) -> Path:
    """A local path holding ``file``: from the mirror when ``data_dir`` is set, else from the hub's local cache.

    Args:
        file: the file to resolve.
        data_dir: root of a local mirror of the hub layout, or None to use the hub.
        who: who needs it, for the error message (e.g. "suite alpacafarm").

    Raises:
        ConfigError: one line: the mirror lacks the file, or the hub is needed and cannot be reached (offline, or no
            connection) and the file is not cached.
    """
    if data_dir is not None:
        path = mirror_path(file, data_dir)
        if not path.is_file():
            raise ConfigError(
                f"suite.data_dir: {path} is missing; a local mirror keeps every file at <data_dir>/<repo>/<path in "
                f"repo>: copy this one there from {file.url()}"
            )
        return path
    try:
        if file.host == "github":
            # The URL names a commit, so a cached copy is always current: no ETag request (which offline would fail).
            manager = DownloadManager(download_config=DownloadConfig(use_etag=False))
            return Path(manager.download(file.url()))
        return Path(hf_hub_download(file.repo, file.path, repo_type="dataset", revision=file.revision))
    except (HfHubHTTPError, OSError) as err:
        raise ConfigError(_needs_hub(who, f"dataset {file}", "set suite.data_dir to a local mirror", err,
                                     github=file.host == "github")) from None


JSON_FORMATS = "a JSON list of records or JSON Lines (one record per line)"


def read_json(path: Path, columns: Sequence[str], what: str) -> Dataset:
    """A JSON (list of records) or JSON Lines file as a Dataset with exactly ``columns``, checked.

    Raises:
        ConfigError: one line naming the file and what it is: the file cannot be read, is empty, is not JSON, holds
            no records, lacks one of ``columns``, or mixes value types in one of them.
    """
    where = f"{what} {path}"
    try:
        with _quiet_datasets():
            data = load_dataset("json", data_files=str(path), split="train")
    except StopIteration:  # how datasets reacts to an empty file
        raise ConfigError(f"{where}: the file is empty; expected {JSON_FORMATS}") from None
    except DatasetGenerationError as err:
        cause = str(err.__cause__ or err.__context__ or err).splitlines()[0]
        raise ConfigError(f"{where}: not {JSON_FORMATS} ({cause})") from None
    except OSError as err:
        raise ConfigError(f"{where}: cannot read the file ({err.strerror or err})") from None
    except ValueError:  # datasets: 'Instruction "train" corresponds to no data!'
        raise ConfigError(f"{where}: holds no records; expected {JSON_FORMATS}") from None
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise ConfigError(
            f"{where}: missing column(s) {', '.join(missing)}; it has {', '.join(data.column_names) or 'none'}"
        )
    # datasets reads a column whose values differ in type (text here, a list there) as raw JSON; the splits built
    # from it would fail in Arrow with a message that names neither the file nor the column.
    mixed = next((c for c in columns if isinstance(data.features[c], Json)), None)
    if mixed is not None:
        types = sorted({type(v).__name__ for v in data[mixed]})
        raise ConfigError(f"{where}: column {mixed!r} mixes value types ({', '.join(types)}); every value of a "
                          "column must have the same type")
    return data.select_columns(list(columns))


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Reads without datasets' progress bars and error log, which would add lines to a bad file's one-line error."""
    bars_were_on = not are_progress_bars_disabled()
    verbosity = datasets_logging.get_verbosity()
    disable_progress_bars()
    datasets_logging.set_verbosity(datasets_logging.CRITICAL)
    try:
        yield
    finally:
        datasets_logging.set_verbosity(verbosity)
        if bars_were_on:
            enable_progress_bars()


def load_json(file: HubFile, columns: Sequence[str], data_dir: str | Path | None, who: str) -> Dataset:
    """Resolves ``file`` (mirror or hub, see :func:`resolve_file`) and reads ``columns`` of it (:func:`read_json`)."""
    return read_json(resolve_file(file, data_dir, who), columns, f"dataset {file}:")


def resolve_model(name: str, cache_dir: Path, trust_remote_code: bool = False) -> Path:
    """``model.base`` as a local checkpoint dir with a chat template and a pad token.

    A local directory is used as it is; anything else is a hub model id, fetched into (or, offline, found in) the
    local HF cache. A tokenizer without a chat template gets AlpacaFarm's prompt format (:data:`ALPACA_CHAT_TEMPLATE`)
    and one without a pad token pads with its unk (else eos) token: both are written into a small derived dir under
    ``cache_dir`` whose weights and config are links to the original files, so nothing large is copied.

    Args:
        name: a checkpoint dir or a hub model id (``huggyllama/llama-7b``).
        cache_dir: where derived dirs live.
        trust_remote_code: also fetch and allow model code shipped with the checkpoint.

    Raises:
        ConfigError: one line: ``name`` is neither a directory nor a model in reach (offline and not cached, no
            connection, no such repository).
    """
    local = Path(name).expanduser()
    model_dir = local if local.is_dir() else _download_model(name, trust_remote_code)
    return _with_chat_format(model_dir, Path(cache_dir), trust_remote_code)


def _download_model(repo_id: str, trust_remote_code: bool) -> Path:
    patterns = _MODEL_FILES + (["*.py"] if trust_remote_code else [])
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=patterns))
        if not any(path.glob("*.safetensors")):
            path = Path(snapshot_download(repo_id, allow_patterns=patterns + ["*.bin"]))
        return path
    except ValueError as err:  # huggingface_hub's HFValidationError: not a valid repo id either
        raise ConfigError(f"model.base: {repo_id!r} is neither a directory nor a hub model id ({err})") from None
    except (HfHubHTTPError, OSError) as err:
        raise ConfigError(
            _needs_hub("model.base", f"model {repo_id}", "point model.base at a local checkpoint dir", err)
        ) from None


def _with_chat_format(model_dir: Path, cache_dir: Path, trust_remote_code: bool) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    if tokenizer.chat_template and tokenizer.pad_token is not None:
        return model_dir
    digest = hashlib.sha256(str(model_dir.resolve()).encode()).hexdigest()[:12]
    target = cache_dir / f"{model_dir.name}-alpaca-format-{digest}"
    if (target / _PREPARED_MARK).is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # another process publishing first is fine; any other failure is not
    with publish_dir(target, published_by_another=(target / _PREPARED_MARK).is_file) as staging:
        tokenizer.chat_template = tokenizer.chat_template or ALPACA_CHAT_TEMPLATE
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        tokenizer.save_pretrained(staging)
        for item in model_dir.iterdir():
            if not (staging / item.name).exists():
                (staging / item.name).symlink_to(item.resolve())
        (staging / _PREPARED_MARK).write_text(f"derived from {model_dir.resolve()}\n")
    return target


def _needs_hub(who: str, what: str, alternative: str, err: Exception, github: bool = False) -> str:
    """The one-line message for something that needs the network and is not in the local cache.

    GitHub files come through the ``datasets`` download cache, whose offline switch is HF_DATASETS_OFFLINE (it
    follows HF_HUB_OFFLINE when unset); hub files through ``huggingface_hub``, whose switch is HF_HUB_OFFLINE.
    """
    source, switch, offline = (
        ("GitHub", "HF_DATASETS_OFFLINE (or HF_HUB_OFFLINE)", datasets_config.HF_HUB_OFFLINE) if github
        else ("the Hugging Face hub", "HF_HUB_OFFLINE", is_offline_mode())
    )
    if offline:
        return (f"{who} needs {source} for {what}, which is not in the local cache, and {switch} is set: run with "
                f"HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 to download it, or {alternative}")
    return f"{who} could not fetch {what} from {source} ({type(err).__name__}); check the connection, or {alternative}"
