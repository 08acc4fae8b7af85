"""deepmd-kit se_e2_a model -> conlearn :class:`DeepPot` (the import half of :mod:`.interchange`).

``from_dp_dict`` reads deepmd-kit's serialized model dict (the content of a ``.dp`` file);
``torch_to_dp_dict`` builds that dict from deepmd-kit's PyTorch files (a frozen TorchScript
``.pth``: its ``state_dict`` and ``model_def_script``; a training checkpoint ``.pt``, read with
``torch.load(weights_only=True)``: ``model`` state and ``_extra_state.model_params``).
Anything conlearn's se_e2_a cannot compute exactly is refused, naming the option.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from .model import DeepPot, DeepPotSpec

SUPPORTED_DESCRIPTORS = ("se_e2_a", "se_a")
PRECISIONS = {"default": "float64", "float64": "float64", "float32": "float32"}


class InterchangeError(ValueError):
    """A model that cannot cross between conlearn and deepmd-kit; the message says why."""


# --------------------------------------------------------------------------- checks
def _check_kind(model_type, descriptor: dict, fitting_type, where: str = "model") -> None:
    """Refuse model types, descriptors and fittings other than a standard se_e2_a energy model."""
    if model_type not in (None, "standard", "ener"):
        raise InterchangeError(
            f"deepmd-kit {where} type '{model_type}' is not supported: conlearn imports a "
            "standard se_e2_a energy model (not ZBL/pair-table, linear, spin or frozen wrappers)")
    dtype = descriptor.get("type")
    if dtype not in SUPPORTED_DESCRIPTORS:
        inner = ""
        if dtype == "hybrid":
            inner = " of " + ", ".join(str(d.get("type")) for d in descriptor.get("list", []))
        raise InterchangeError(
            f"descriptor '{dtype}'{inner} is not supported: conlearn's DeepPot is se_e2_a (se_a) "
            "only; se_atten/DPA-1, DPA-2, DPA-3, se_e3, se_r, se_a_tpe, hybrid and other "
            "descriptors have no conlearn counterpart")
    if fitting_type not in (None, "ener"):
        raise InterchangeError(f"fitting type '{fitting_type}' is not supported (energy fitting 'ener' only)")


def _require(section: dict, where: str, rules: dict) -> None:
    """Every ``key: allowed`` of ``rules`` (missing keys pass): a value outside ``allowed`` is an
    error naming ``where.key``."""
    for key, allowed in rules.items():
        if key in section and section[key] not in allowed:
            raise InterchangeError(f"{where}.{key} = {section[key]!r} cannot be imported: "
                                   f"conlearn supports only {allowed[0]!r}")


def _precision(desc: dict, fit: dict) -> str:
    p = [PRECISIONS.get(str(x.get("precision", "default"))) for x in (desc, fit)]
    if None in p or p[0] != p[1]:
        raise InterchangeError(f"precision descriptor={desc.get('precision')!r}, fitting="
                               f"{fit.get('precision')!r}: conlearn needs one of float64/float32 for both")
    return p[0]


def _check_options(m: dict, desc: dict, fit: dict) -> None:
    _require(m, "model", {"atom_exclude_types": ([],), "pair_exclude_types": ([],)})
    _require(desc, "descriptor", {"exclude_types": ([],), "env_protection": (0.0,),
                                  "activation_function": ("tanh",), "spin": (None,)})
    _require(desc.get("env_mat", {}), "descriptor.env_mat", {"use_exp_switch": (False,),
                                                              "protection": (0.0,)})
    _require(fit, "fitting", {"numb_fparam": (0,), "numb_aparam": (0,), "dim_case_embd": (0,),
                              "mixed_types": (False,), "exclude_types": ([],),
                              "activation_function": ("tanh",), "atom_ener": ([], None),
                              "spin": (None,), "remove_vaccum_contribution": (None,)})
    if "compress" in desc:
        raise InterchangeError("a compressed deepmd-kit model (tabulated embedding nets): import "
                               "the uncompressed model (conlearn compress tabulates it again)")


# --------------------------------------------------------------------------- dict -> model
def _put(dst: torch.Tensor, arr, what: str) -> None:
    arr = np.asarray(arr)
    if tuple(arr.shape) != tuple(dst.shape):
        raise InterchangeError(f"{what}: shape {tuple(arr.shape)}, expected {tuple(dst.shape)}")
    dst.copy_(torch.from_numpy(arr.copy()).to(dst.dtype))


def _var(layer: dict, name: str):
    v = layer.get("@variables", {}).get(name)
    return None if v is None else np.asarray(v)


def _load_embedding(net, data: dict, neuron: list[int], what: str) -> None:
    layers = data["layers"]
    if len(layers) != len(neuron):
        raise InterchangeError(f"{what}: {len(layers)} layers, descriptor.neuron has {len(neuron)}")
    for k, (layer, lin) in enumerate(zip(layers, net.layers)):
        where = f"{what} layer {k}"
        if net.kinds[k] and not layer.get("resnet", True):
            raise InterchangeError(f"{where}: not residual in deepmd-kit, residual in conlearn")
        if layer.get("activation_function", "tanh") != "tanh":
            raise InterchangeError(f"{where}: activation {layer['activation_function']!r} (tanh only)")
        w, b, idt = _var(layer, "w"), _var(layer, "b"), _var(layer, "idt")
        _put(lin.weight, w.T, where + " w")
        _put(lin.bias, np.zeros(lin.out_features) if b is None else b.ravel(), where + " b")
        if net.resnet_dt:  # conlearn steps every layer; deepmd-kit's absent step is exactly 1
            _put(net.dts[k], np.ones(lin.out_features) if idt is None else idt.ravel(), where + " idt")
        elif idt is not None:
            raise InterchangeError(f"{where}: has a time step but resnet_dt is false")


def _load_fitting(net, data: dict, widths: list[int], what: str) -> None:
    layers = data["layers"]
    if len(layers) != len(widths):
        raise InterchangeError(f"{what}: {len(layers)} layers, expected {len(widths)} "
                               "(fitting_net.neuron and one output layer)")
    for k, lin in enumerate(net.hidden):
        layer, where = layers[k], f"{what} hidden layer {k}"
        a, b_ = lin.in_features, lin.out_features
        if layer.get("resnet", True) and b_ == 2 * a:
            raise InterchangeError(f"{where} doubles its width ({a} -> {b_}) and is residual in "
                                   "deepmd-kit ([x, x] + y); conlearn's fitting net has no such layer")
        if net.residual[k] and not layer.get("resnet", True):
            raise InterchangeError(f"{where}: not residual in deepmd-kit, residual in conlearn")
        if layer.get("activation_function", "tanh") != "tanh":
            raise InterchangeError(f"{where}: activation {layer['activation_function']!r} (tanh only)")
        w, bias, idt = _var(layer, "w"), _var(layer, "b"), _var(layer, "idt")
        _put(lin.weight, w.T, where + " w")
        _put(lin.bias, np.zeros(b_) if bias is None else bias.ravel(), where + " b")
        if idt is not None and not net.residual[k]:
            raise InterchangeError(f"{where}: a time step on a non-residual layer")
        if net.resnet_dt and net.residual[k]:
            _put(net.dts[k], np.ones(b_) if idt is None else idt.ravel(), where + " idt")
        elif idt is not None:
            raise InterchangeError(f"{where}: has a time step but resnet_dt is false")
    out = layers[-1]
    if out.get("activation_function", "none") not in ("none", "linear", None) or _var(out, "idt") is not None:
        raise InterchangeError(f"{what} output layer: must be linear without time step")
    w, bias = _var(out, "w"), _var(out, "b")
    _put(net.out.weight, w.T, what + " output w")
    _put(net.out.bias, np.zeros(1) if bias is None else bias.ravel(), what + " output b")


def _has_idt(nets: list) -> bool:
    return any(_var(layer, "idt") is not None for n in nets if n for layer in n["layers"])


def _stats(desc: dict, nt: int, nnei: int) -> tuple[np.ndarray, np.ndarray]:
    avg, std = (np.asarray(desc["@variables"][k]) for k in ("davg", "dstd"))
    for name, a in (("davg", avg), ("dstd", std)):
        if a.shape != (nt, nnei, 4):
            raise InterchangeError(f"descriptor {name}: shape {a.shape}, expected {(nt, nnei, 4)}")
        if not np.array_equal(a, np.broadcast_to(a[:, :1], a.shape)):
            raise InterchangeError(f"descriptor {name} differs between neighbour slots; conlearn "
                                   "keeps one row per centre type")
    if np.any(avg[:, 0, 1:] != 0):
        raise InterchangeError("descriptor davg has non-zero xyz columns (conlearn: zero)")
    return avg[:, 0], std[:, 0]


def from_dp_dict(data: dict) -> DeepPot:
    """A conlearn :class:`DeepPot` computing what deepmd-kit's serialized model ``data``
    computes (``data`` is a whole ``.dp`` dict or its ``"model"`` part)."""
    m = data.get("model", data)
    desc, fit = m.get("descriptor", {}), m.get("fitting", {})
    _check_kind(m.get("type"), desc, fit.get("type"))
    _check_options(m, desc, fit)
    if not (isinstance(desc.get("sel"), list) and all(isinstance(x, int) for x in desc["sel"])):
        raise InterchangeError(f"descriptor.sel = {desc.get('sel')!r}: a list of neighbour counts "
                               "per type is needed (the model was not built?)")
    type_map, sel = [str(t) for t in m["type_map"]], list(desc["sel"])
    nt, tos = len(type_map), bool(desc.get("type_one_side", False))
    emb, fit_nets = desc["embeddings"]["networks"], fit["nets"]["networks"]
    if len(emb) != nt ** (1 if tos else 2) or len(fit_nets) != nt:
        raise InterchangeError(f"{len(emb)} embedding and {len(fit_nets)} fitting nets for "
                               f"{nt} types (type_one_side={tos})")
    script = data.get("model_def_script")
    seed = script.get("descriptor", {}).get("seed") if isinstance(script, dict) else None
    spec = DeepPotSpec(
        type_map=type_map, sel=sel, rcut=float(desc["rcut"]), rcut_smth=float(desc["rcut_smth"]),
        neuron=[int(x) for x in desc["neuron"]], axis_neuron=int(desc["axis_neuron"]),
        type_one_side=tos, embed_resnet_dt=_has_idt(emb),
        fitting_neuron=[int(x) for x in fit["neuron"]], fitting_resnet_dt=_has_idt(fit_nets),
        precision=_precision(desc, fit), seed=seed if isinstance(seed, int) else 1)
    model = DeepPot(spec)
    d = model.descriptor
    with torch.no_grad():
        for ti in range(1 if tos else nt):
            for tj in range(nt):
                net = emb[tj if tos else ti + nt * tj]  # deepmd-kit's index of (t_i, t_j)
                what = f"embedding net ({type_map[tj]})" if tos else \
                    f"embedding net ({type_map[ti]}, {type_map[tj]})"
                if net is None:
                    raise InterchangeError(f"{what} is missing (an excluded type pair?)")
                _load_embedding(d.net(ti, tj), net, spec.neuron, what)
        avg, std = _stats(desc, nt, d.nnei)
        _put(d.avg, avg, "descriptor davg")
        _put(d.std, std, "descriptor dstd")
        for t in range(nt):
            _load_fitting(model.fitting[t], fit_nets[t], [*spec.fitting_neuron, 1],
                          f"fitting net ({type_map[t]})")
        bias = np.asarray(fit["@variables"]["bias_atom_e"]).reshape(nt)
        out_bias = m.get("@variables", {}).get("out_bias")
        if out_bias is not None:
            out_bias = np.asarray(out_bias)
            if out_bias.shape != (1, nt, 1):
                raise InterchangeError(f"out_bias: shape {out_bias.shape}, expected {(1, nt, 1)}")
            bias = out_bias.reshape(nt) if not bias.any() else bias + out_bias.reshape(nt)
        _put(model.bias_atom_e, bias, "bias_atom_e + out_bias")
    return model.eval()


# --------------------------------------------------------------------------- PyTorch files
def _read_torch(path: Path) -> tuple[dict, dict, str]:
    """``(model_params, state_dict, key prefix)`` of a frozen ``.pth`` or checkpoint ``.pt``."""
    try:
        if path.suffix == ".pth":  # TorchScript: deepmd-kit's code inside runs only when called
            with warnings.catch_warnings():  # torch.jit.load's deprecation notice
                warnings.simplefilter("ignore", DeprecationWarning)
                m = torch.jit.load(str(path), map_location="cpu")
            return json.loads(m.model_def_script), dict(m.state_dict()), ""
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # zip, TorchScript or unpickling errors of a foreign/truncated file
        raise InterchangeError(f"{path}: not a readable deepmd-kit PyTorch model "
                               f"({type(err).__name__}: {str(err)[:160]})") from None
    sd = ck.get("model", ck) if isinstance(ck, dict) else {}
    params = sd.get("_extra_state", {}).get("model_params") if isinstance(sd, dict) else None
    if not isinstance(params, dict):
        raise InterchangeError(f"{path}: no model_params in _extra_state: not a deepmd-kit "
                               "PyTorch training checkpoint")
    if "model_dict" in params:
        raise InterchangeError(f"{path}: a multi-task checkpoint (heads {sorted(params['model_dict'])}); "
                               "`dp --pt freeze --head NAME` one head first")
    return params, sd, "model.Default."


def _torch_layers(sd: dict, base: str, activation: str, last_linear: bool) -> list[dict]:
    layers, k = [], 0
    while f"{base}.layers.{k}.matrix" in sd:
        v = {n: (None if sd.get(f"{base}.layers.{k}.{key}") is None else
                 sd[f"{base}.layers.{k}.{key}"].detach().cpu().numpy())
             for n, key in (("w", "matrix"), ("b", "bias"), ("idt", "idt"))}
        layers.append({"activation_function": activation, "resnet": True, "@variables": v})
        k += 1
    if not layers:
        raise InterchangeError(f"no layers under '{base}' in the state dict")
    if last_linear:
        layers[-1].update(activation_function="none", resnet=False)
    return layers


def torch_to_dp_dict(path: str | Path) -> dict:
    """deepmd-kit's serialized dict for a frozen ``.pth`` or training checkpoint ``.pt``
    (the parts :func:`from_dp_dict` reads)."""
    path = Path(path)
    params, sd, pre = _read_torch(path)
    dp, fp = params.get("descriptor", {}), params.get("fitting_net", {})
    if "use_srtab" in params or params.get("spin"):
        raise InterchangeError(f"{path}: a {'ZBL/pair-table' if 'use_srtab' in params else 'spin'} "
                               "model is not supported (standard se_e2_a energy models only)")
    try:
        _check_kind(params.get("type"), dp, fp.get("type"))
    except InterchangeError as err:
        raise InterchangeError(f"{path}: {err}") from None
    nt, tos = len(params["type_map"]), bool(dp.get("type_one_side", False))
    a, act = pre + "atomic_model.", dp.get("activation_function", "tanh")
    base = a + "descriptor.sea."
    if base + "mean" not in sd:
        raise InterchangeError(f"{path}: no '{base}mean' in the state dict (keys like "
                               f"{sorted(sd)[:3]}); not a deepmd-kit 3.x se_e2_a model?")
    emb = [{"layers": _torch_layers(sd, f"{base}filter_layers.networks.{k}", act, False)}
           for k in range(nt ** (1 if tos else 2))]
    fit = [{"layers": _torch_layers(sd, f"{a}fitting_net.filter_layers.networks.{t}",
                                    fp.get("activation_function", "tanh"), True)} for t in range(nt)]
    np_ = {k: v.detach().cpu().numpy() for k, v in sd.items() if isinstance(v, torch.Tensor)}
    descriptor = {**dp, "embeddings": {"networks": emb},
                  "@variables": {"davg": np_[base + "mean"], "dstd": np_[base + "stddev"]}}
    fitting = {**fp, "nets": {"networks": fit},
               "@variables": {"bias_atom_e": np_[a + "fitting_net.bias_atom_e"]}}
    model = {"@class": "Model", "type": params.get("type", "standard"),
             "type_map": params["type_map"],
             "atom_exclude_types": params.get("atom_exclude_types", []),
             "pair_exclude_types": params.get("pair_exclude_types", []),
             "@variables": {"out_bias": np_.get(a + "out_bias"), "out_std": np_.get(a + "out_std")},
             "descriptor": descriptor, "fitting": fitting}
    return {"backend": "PyTorch", "model": model, "model_def_script": params}
