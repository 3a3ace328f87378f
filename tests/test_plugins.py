"""Plugins: registration through entry points, duplicates and overrides, broken plugins (warn, or fail when
ZOOINFER_STRICT_PLUGINS=1), backend selection, `zooinfer plugins`, and a third-party model type used by LLM."""
import json
import shutil
import types
import warnings
from importlib.metadata import version

import pytest

from zooinfer import LLM, SamplingParams, cli, hookimpl, plugin_manager
from zooinfer.errors import PluginError, ZooinferError
from zooinfer.models.llama import LlamaTpPartModel
from zooinfer.plugin_manager import backend_registry, get_plugin_manager, model_registry, select_backend
from zooinfer.plugins.torch_backend.backend import TorchBackend

pytestmark = pytest.mark.usefixtures("torch_single_thread")

ZOOINFER_VERSION = version("zooinfer")
GREEDY = SamplingParams(max_new_tokens=6, temperature=0, ignore_eos=True)
PROMPT = [5, 17, 42, 99]
MISSING_MODULE = "zooinfer_test_no_such_module"


class MyTiny(LlamaTpPartModel):
    """A 'third-party' model family: llama under another name."""


class FastBackend(TorchBackend):
    name = "fast-test"
    priority = 10


class FakeDeviceBackend(TorchBackend):
    name = "fakedev-test"
    device_types = ("fakedev",)

    @classmethod
    def is_available(cls, device_type):
        return device_type in cls.device_types  # torch's own asks torch.<device type>, which has no fakedev


class UnavailableBackend(TorchBackend):
    name = "unavailable-test"
    priority = 100

    @classmethod
    def is_available(cls, device_type):
        return False


@pytest.fixture(autouse=True)
def no_leftover_plugins():
    """Every test leaves the process-wide plugin manager as it found it."""
    before = {name for name, _ in get_plugin_manager().list_name_plugin()}
    yield
    assert {name for name, _ in get_plugin_manager().list_name_plugin()} == before


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setenv("ZOOINFER_STRICT_PLUGINS", "1")


@pytest.fixture(autouse=True)
def not_strict(monkeypatch):
    monkeypatch.delenv("ZOOINFER_STRICT_PLUGINS", raising=False)


@pytest.fixture(scope="module")
def reference_tokens(tiny_llama_dir):
    """Greedy tokens of the tiny checkpoint through the built-in llama family and torch backend."""
    return LLM(str(tiny_llama_dir)).generate(prompt_token_ids=PROMPT, sampling_params=GREEDY)[0].token_ids


def run_cli(capsys, monkeypatch, *argv):
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")  # main() sets it; keep that from leaking out of the test
    with warnings.catch_warnings():  # main() installs its one-line printer; show every warning through it
        warnings.simplefilter("always")
        code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- built-ins -----------------------------------------------------------------------------------------
def test_builtins_come_from_the_distributions_entry_points():
    models = {e.name: e for e in model_registry().entries()}
    backends = {e.name: e for e in backend_registry().entries()}
    for entry, plugin in ((models["llama"], "llama"), (backends["torch"], "torch")):
        assert (entry.distribution, entry.version) == ("zooinfer", ZOOINFER_VERSION)
        assert entry.plugin == plugin
    assert models["llama"].as_dict()["target"] == "zooinfer.models.llama.model:LlamaTpPartModel"
    assert model_registry().get("llama") is LlamaTpPartModel
    assert backend_registry().get("torch") is TorchBackend
    assert select_backend("torch", "cpu") is TorchBackend


def test_throwaway_plugin_entries_have_no_distribution(register_plugin):
    register_plugin("toy-plugin",
                    models=lambda registry: registry.register("toy", "zooinfer.models.llama:LlamaTpPartModel"),
                    backends=lambda registry: registry.register("toy-backend", FakeDeviceBackend))
    toy = {e.name: e for e in model_registry().entries()}["toy"]
    assert (toy.plugin, toy.distribution, toy.version) == ("toy-plugin", None, None)
    assert model_registry().get("toy") is LlamaTpPartModel
    assert backend_registry().get("toy-backend") is FakeDeviceBackend
    assert "llama" in model_registry() and "torch" in backend_registry()


# -- duplicates and overrides --------------------------------------------------------------------------
def test_duplicate_model_type_names_both_plugins(register_plugin):
    register_plugin("plugin-one", models=lambda registry: registry.register("dupe", LlamaTpPartModel))
    register_plugin("plugin-two", models=lambda registry: registry.register("dupe", MyTiny))
    with pytest.raises(PluginError) as exc:
        model_registry()
    msg = str(exc.value)
    assert "'dupe'" in msg and "plugin-one" in msg and "plugin-two" in msg and "override=True" in msg
    assert "\n" not in msg


def test_duplicate_of_a_builtin_is_an_error(register_plugin, tiny_llama_dir):
    register_plugin("copycat", models=lambda registry: registry.register("llama", MyTiny))
    with pytest.raises(PluginError, match=r"'llama'.*'llama'.*'copycat'"):
        LLM(str(tiny_llama_dir))


def test_override_replaces_a_builtin(register_plugin, tiny_llama_dir, reference_tokens):
    register_plugin("replacer", models=lambda registry: registry.register("llama", MyTiny, override=True))
    entry = {e.name: e for e in model_registry().entries()}["llama"]
    assert (entry.plugin, entry.distribution) == ("replacer", None)
    llm = LLM(str(tiny_llama_dir))
    assert type(llm.model) is MyTiny
    assert llm.generate(prompt_token_ids=PROMPT, sampling_params=GREEDY)[0].token_ids == reference_tokens


def test_two_overrides_of_one_name_conflict(register_plugin):
    register_plugin("over-a", models=lambda registry: registry.register("llama", MyTiny, override=True))
    register_plugin("over-b", models=lambda registry: registry.register("llama", MyTiny, override=True))
    with pytest.raises(PluginError, match="over-a.*over-b"):
        model_registry()


def test_registry_is_restored_after_a_plugin_is_removed(register_plugin):
    pm = get_plugin_manager()
    plugin = types.SimpleNamespace(zooinfer_register_models=hookimpl(
        lambda registry: registry.register("llama", MyTiny, override=True)))
    pm.register(plugin, name="temporary")
    try:
        assert model_registry().get("llama") is MyTiny
    finally:
        pm.unregister(name="temporary")
    assert model_registry().get("llama") is LlamaTpPartModel


# -- broken plugins ------------------------------------------------------------------------------------
@pytest.mark.parametrize("target, error", [(f"{MISSING_MODULE}:Model", "ModuleNotFoundError"),
                                           ("zooinfer.models.llama:NoSuchClass", "AttributeError")])
def test_lazy_model_that_fails_to_import(register_plugin, tiny_llama_dir, reference_tokens, target, error):
    register_plugin("lazy-broken", models=lambda registry: registry.register("ghost", target))
    registry = model_registry()  # listing stays lazy: nothing is imported yet
    assert "ghost" in registry
    with pytest.raises(PluginError) as exc:
        registry.get("ghost")
    msg = str(exc.value)
    assert "lazy-broken" in msg and "ghost" in msg and error in msg and "\n" not in msg
    # every other model type still works
    llm = LLM(str(tiny_llama_dir))
    assert llm.generate(prompt_token_ids=PROMPT, sampling_params=GREEDY)[0].token_ids == reference_tokens


def test_lazy_backend_that_fails_to_import_warns(register_plugin, tiny_llama_dir, reference_tokens):
    installed_default = select_backend(None, "cpu")  # torch, or a CPU backend of higher priority installed here
    register_plugin("lazy-backend", backends=lambda registry: registry.register("ghost", f"{MISSING_MODULE}:Backend"))
    with pytest.warns(RuntimeWarning, match=f"lazy-backend.*ModuleNotFoundError.*{MISSING_MODULE}"):
        assert select_backend(None, "cpu") is installed_default
    with pytest.warns(RuntimeWarning, match="lazy-backend"):
        llm = LLM(str(tiny_llama_dir))
    assert llm.generate(prompt_token_ids=PROMPT, sampling_params=GREEDY)[0].token_ids == reference_tokens


def test_lazy_backend_that_fails_to_import_strict(register_plugin, strict, tiny_llama_dir):
    register_plugin("lazy-backend", backends=lambda registry: registry.register("ghost", f"{MISSING_MODULE}:Backend"))
    with pytest.raises(PluginError, match="lazy-backend.*ModuleNotFoundError"):
        select_backend(None, "cpu")
    with pytest.raises(PluginError, match="lazy-backend"):
        LLM(str(tiny_llama_dir))


def _boom(registry):
    raise RuntimeError("kaboom")


@pytest.mark.parametrize("hook", ["models", "backends"])
def test_raising_hook_warns_and_others_still_register(register_plugin, hook):
    register_plugin("good-plugin", models=lambda registry: registry.register("good", MyTiny),
                    backends=lambda registry: registry.register("good-backend", FastBackend))
    register_plugin("exploding", **{hook: _boom})
    with pytest.warns(RuntimeWarning) as record:
        models, backends = model_registry(), backend_registry()
    messages = [str(w.message) for w in record]
    assert len(messages) == 1 and "exploding" in messages[0] and "RuntimeError: kaboom" in messages[0]
    assert {"llama", "good"} <= set(models.names()) and {"torch", "good-backend"} <= set(backends.names())


@pytest.mark.parametrize("hook", ["models", "backends"])
def test_raising_hook_is_an_error_when_strict(register_plugin, strict, hook):
    register_plugin("exploding", **{hook: _boom})
    collect = model_registry if hook == "models" else backend_registry
    with pytest.raises(PluginError, match="exploding.*kaboom"):
        collect()


@pytest.mark.parametrize("name, target", [("", MyTiny), (None, MyTiny), ("weird", 42), ("weird", object()),
                                          ("weird", "zooinfer.models.llama"), ("weird", ":LlamaTpPartModel")])
def test_invalid_registration_warns_naming_the_plugin(register_plugin, capsys, monkeypatch, name, target):
    register_plugin("sloppy", models=lambda registry: registry.register(name, target))
    with pytest.warns(RuntimeWarning, match="sloppy"):
        registry = model_registry()
    assert "llama" in registry and "weird" not in registry
    code, out, err = run_cli(capsys, monkeypatch, "plugins", "--json")  # the listing survives it
    assert code == 0 and "llama" in out and "sloppy" in err


def _fake_entry_points(monkeypatch):
    """The real entry points plus one whose module cannot be imported, as a third-party distribution would ship."""
    def load():
        raise ImportError("no module named 'broken_dist_plugin'")

    broken = types.SimpleNamespace(name="broken-ep", dist=types.SimpleNamespace(name="brokendist", version="9.9"),
                                   load=load)
    real = list(plugin_manager.entry_points(group=plugin_manager.ENTRY_POINT_GROUP))
    monkeypatch.setattr(plugin_manager, "entry_points", lambda group: [*real, broken])


def test_entry_point_that_fails_to_load_warns(monkeypatch):
    _fake_entry_points(monkeypatch)
    with pytest.warns(RuntimeWarning, match=r"broken-ep \(brokendist 9.9\).*ImportError.*broken_dist_plugin"):
        pm, dists = plugin_manager._load_entry_points.__wrapped__()  # a fresh manager: the cached one is untouched
    assert dists["llama"] == ("zooinfer", ZOOINFER_VERSION) and "broken-ep" not in dists
    assert pm.get_plugin("llama") is not None and pm.get_plugin("broken-ep") is None


def test_entry_point_that_fails_to_load_strict(monkeypatch, strict):
    _fake_entry_points(monkeypatch)
    with pytest.raises(PluginError, match="broken-ep.*brokendist"):
        plugin_manager._load_entry_points.__wrapped__()


# -- backend selection ---------------------------------------------------------------------------------
def test_unknown_backend_lists_registered_ones(tiny_llama_dir):
    with pytest.raises(PluginError) as exc:
        select_backend("no-such-backend", "cpu")
    assert "no-such-backend" in str(exc.value) and "torch" in str(exc.value)
    with pytest.raises(ZooinferError, match="no-such-backend.*torch"):
        LLM(str(tiny_llama_dir), backend="no-such-backend")


def test_backend_that_does_not_serve_the_device(register_plugin):
    register_plugin("fakedev-plugin", backends=lambda registry: registry.register("fakedev-test", FakeDeviceBackend))
    with pytest.raises(PluginError, match=r"fakedev-test.*'cpu'.*fakedev"):
        select_backend("fakedev-test", "cpu")
    with pytest.raises(PluginError, match=r"'torch'.*fakedev"):
        select_backend("torch", "fakedev:0")
    assert select_backend(None, "fakedev:1") is FakeDeviceBackend
    with pytest.raises(PluginError, match=r"no available backend serves device 'nodev'.*torch"):
        select_backend(None, "nodev")


def test_highest_priority_available_backend_is_the_default(register_plugin, tiny_llama_dir, reference_tokens,
                                                           monkeypatch):
    # above whatever CPU backend is installed here
    monkeypatch.setattr(FastBackend, "priority", select_backend(None, "cpu").priority + 1)

    def backends(registry):
        registry.register("fast-test", FastBackend)
        registry.register("unavailable-test", UnavailableBackend)
    register_plugin("backends-plugin", backends=backends)
    assert select_backend(None, "cpu") is FastBackend
    assert select_backend("torch", "cpu") is TorchBackend
    with pytest.raises(PluginError, match="unavailable-test.*not available"):
        select_backend("unavailable-test", "cpu")
    llm = LLM(str(tiny_llama_dir))
    assert type(llm.model.ops) is FastBackend
    assert llm.generate(prompt_token_ids=PROMPT, sampling_params=GREEDY)[0].token_ids == reference_tokens


# -- a third-party model type, end to end -------------------------------------------------------------
@pytest.fixture(scope="module")
def mytiny_dir(tiny_llama_dir, tmp_path_factory):
    """The tiny llama checkpoint again, with config.json saying model_type "mytiny"."""
    out = tmp_path_factory.mktemp("mytiny")
    config = json.loads((tiny_llama_dir / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "model_type": "mytiny"}))
    shutil.copy(tiny_llama_dir / "model.safetensors", out / "model.safetensors")
    return out


@pytest.mark.parametrize("target, expected_class", [("zooinfer.models.llama:LlamaTpPartModel", LlamaTpPartModel),
                                                    (MyTiny, MyTiny)])
def test_third_party_model_type_is_used_by_llm(register_plugin, mytiny_dir, reference_tokens, target, expected_class):
    with pytest.raises(PluginError, match="mytiny.*llama"):
        LLM(str(mytiny_dir))
    register_plugin("mytiny-plugin", models=lambda registry: registry.register("mytiny", target))
    llm = LLM(str(mytiny_dir))
    assert type(llm.model) is expected_class
    out = llm.generate(prompt_token_ids=PROMPT, sampling_params=GREEDY)[0]
    assert out.token_ids == reference_tokens and out.finish_reason == "length"


# -- `zooinfer plugins` --------------------------------------------------------------------------------
def test_cli_plugins_lists_every_entry_with_its_source(register_plugin, capsys, monkeypatch):
    register_plugin("listed-plugin", models=lambda registry: registry.register("listed", MyTiny))
    code, out, err = run_cli(capsys, monkeypatch, "plugins")
    assert code == 0 and err == ""
    lines = out.splitlines()
    for name in [*model_registry().names(), *backend_registry().names()]:
        assert any(line.split()[0] == name for line in lines if line.startswith("  ")), name
    llama = next(line for line in lines if line.split()[0] == "llama")
    torch_line = next(line for line in lines if line.split()[0] == "torch")
    for line in (llama, torch_line):
        assert f"zooinfer {ZOOINFER_VERSION}" in line
    assert "plugin listed-plugin" in next(line for line in lines if line.split()[0] == "listed")
    assert lines.index("model types:") < lines.index("backends:")


def test_cli_plugins_json(register_plugin, capsys, monkeypatch):
    register_plugin("listed-plugin", backends=lambda registry: registry.register("listed-backend", FastBackend))
    code, out, err = run_cli(capsys, monkeypatch, "plugins", "--json")
    assert code == 0 and err == ""
    listing = json.loads(out)
    models = {e["name"]: e for e in listing["models"]}
    backends = {e["name"]: e for e in listing["backends"]}
    assert set(models) == set(model_registry().names()) and set(backends) == set(backend_registry().names())
    for entry in (models["llama"], backends["torch"]):
        assert (entry["distribution"], entry["version"]) == ("zooinfer", ZOOINFER_VERSION)
    assert models["llama"]["target"] == "zooinfer.models.llama.model:LlamaTpPartModel"
    assert backends["listed-backend"] == {"name": "listed-backend", "target": f"{__name__}:FastBackend",
                                          "plugin": "listed-plugin", "distribution": None, "version": None,
                                          "error": None, "device_types": ["cpu", "cuda", "mps", "xpu"],
                                          "priority": 10, "reference": False, "overrides": []}
    assert backends["torch"]["reference"] and backends["torch"]["overrides"] == []


def test_cli_plugins_shows_an_entry_that_cannot_load(register_plugin, capsys, monkeypatch):
    register_plugin("lazy-broken", models=lambda registry: registry.register("ghost", "no_such_module_xyz:Model"))
    code, out, err = run_cli(capsys, monkeypatch, "plugins", "--json")
    ghost = {e["name"]: e for e in json.loads(out)["models"]}["ghost"]
    assert code == 0 and "lazy-broken" in ghost["error"] and "no_such_module_xyz" in ghost["error"]


def test_cli_plugins_with_a_broken_plugin(register_plugin, capsys, monkeypatch):
    register_plugin("exploding", models=_boom)
    code, out, err = run_cli(capsys, monkeypatch, "plugins", "--json")
    assert code == 0 and "llama" in {e["name"] for e in json.loads(out)["models"]}
    assert err.count("\n") == 1 and err.startswith("zooinfer: warning:") and "exploding" in err and "kaboom" in err


def test_cli_plugins_with_a_broken_plugin_strict(register_plugin, strict, capsys, monkeypatch):
    register_plugin("exploding", models=_boom)
    code, out, err = run_cli(capsys, monkeypatch, "plugins")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("zooinfer: error:") and "exploding" in err


def test_cli_plugins_shows_what_a_backend_overrides(register_plugin, capsys, monkeypatch):
    register_plugin("listed-plugin", backends=lambda registry: registry.register("own-norm", OwnNormBackend))
    code, out, err = run_cli(capsys, monkeypatch, "plugins")
    lines = out.splitlines()
    own = lines[lines.index(next(line for line in lines if line.split()[0] == "own-norm")) + 1]
    assert own.split() == ["devices", "npu;", "priority", "3;", "overrides", "rmsnorm"]
    torch_facts = lines[lines.index(next(line for line in lines if line.split()[0] == "torch")) + 1]
    assert "priority 0" in torch_facts and "the reference" in torch_facts


# -- what a backend declares: ops, devices; how one is chosen --------------------------------------------
class OwnNormBackend(TorchBackend):
    """A backend of a device torch does not know until its runtime is imported (a PrivateUse1 device)."""
    name = "own-norm"
    device_types = ("npu",)
    priority = 3

    @classmethod
    def is_available(cls, device_type):
        return device_type in cls.device_types

    def rmsnorm(self, x, weight, eps, residual=None):
        return super().rmsnorm(x, weight, eps, residual)


class OtherNpuBackend(OwnNormBackend):
    name = "other-npu"

    def linear(self, x, weight, bias=None):
        return super().linear(x, weight, bias)


def test_overridden_ops_are_read_off_the_class():
    from zooinfer.ops import op_names
    from zooinfer.plugins.triton_backend.backend import TritonBackend

    assert TorchBackend.overridden_ops() == () and FastBackend.overridden_ops() == ()
    assert OwnNormBackend.overridden_ops() == ("rmsnorm",)
    assert OtherNpuBackend.overridden_ops() == ("linear", "rmsnorm")  # inherited from a non-reference parent too
    assert set(TritonBackend.overridden_ops()) == set(op_names()) - {"embedding"}


def test_a_tie_at_the_top_priority_is_an_error_naming_both(register_plugin):
    def backends(registry):
        registry.register("own-norm", OwnNormBackend)
        registry.register("other-npu", OtherNpuBackend)
    register_plugin("npu-plugins", backends=backends)
    with pytest.raises(PluginError, match=r"'other-npu', 'own-norm'.*'npu:0'.*priority 3.*name one") as exc:
        select_backend(None, "npu:0")
    assert "\n" not in str(exc.value)
    assert select_backend("own-norm", "npu") is OwnNormBackend  # a named backend always wins
    assert select_backend("other-npu", "npu:1") is OtherNpuBackend


def test_a_device_torch_does_not_know_yet_reaches_backend_selection(register_plugin, tiny_llama_dir):
    with pytest.raises(PluginError, match=r"no available backend serves device 'npu'"):
        LLM(str(tiny_llama_dir), device="npu")
    register_plugin("npu-plugin", backends=lambda registry: registry.register("own-norm", OwnNormBackend))
    assert select_backend(None, "npu:0") is OwnNormBackend
    # Selected; without the vendor runtime imported, torch itself cannot make the device: said in one line.
    with pytest.raises(ZooinferError, match=r"invalid device 'npu'.*backend that serves it.*runtime") as exc:
        LLM(str(tiny_llama_dir), device="npu")
    assert "\n" not in str(exc.value)


def test_a_privateuse1_device_parses_once_its_runtime_registers_it():
    """What a vendor runtime does on import (torch_npu renames PrivateUse1 to "npu"); a fresh process, since
    the rename cannot be undone."""
    import subprocess
    import sys

    code = ("import torch; torch.utils.rename_privateuse1_backend('npu');"
            "from zooinfer.engine.loading import parse_device; print(parse_device('npu:1'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "npu:1", done.stderr


@pytest.mark.parametrize("device", ["", "cuda:x", "npu:1:2", "CPU", "cpu "])
def test_a_malformed_device_is_named(device, tiny_llama_dir):
    with pytest.raises(ZooinferError, match=f"invalid device {device!r}"):
        select_backend(None, device)
    with pytest.raises(ZooinferError, match=f"invalid device {device!r}"):
        LLM(str(tiny_llama_dir), device=device)


def test_torch_backend_is_not_available_for_a_device_missing_here():
    import torch

    assert TorchBackend.is_available("cpu")
    assert TorchBackend.is_available("cuda") == torch.cuda.is_available()
    assert TorchBackend.is_available("xpu") == torch.xpu.is_available()
    assert not TorchBackend.is_available("npu")
