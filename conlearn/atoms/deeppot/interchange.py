"""deepmd-kit interchange: a conlearn :class:`DeepPot` <-> deepmd-kit's se_e2_a energy model.

``export_model(model.pt, out.dp)`` writes deepmd-kit's backend-independent model file
(``dp convert-backend`` reads it): HDF5 whose ``attrs["json"]`` is the serialized model dict
and whose datasets ``/variable_NNNN`` are its arrays (named in the JSON where the array was).
``import_model(src, model.pt)`` reads such a ``.dp`` (or ``.yaml``), a frozen TorchScript
``.pth`` or a PyTorch training checkpoint ``.pt`` of deepmd-kit. deepmd-kit itself is needed
for neither. The field-by-field mapping and what cannot cross are in ``docs/interchange.md``.

Conventions that differ and how they are bridged, exactly:

* weights: deepmd ``w [in, out]`` is the transpose of torch's ``weight [out, in]``;
* embedding nets: deepmd-kit's index of the pair ``(t_i, t_j)`` is ``t_i + n_types * t_j``,
  conlearn's ``t_i * n_types + t_j``;
* time steps (``resnet_dt``): deepmd-kit has them on residual layers only; conlearn's
  embedding nets have one on every layer, so a non-residual layer's step must be exactly 1
  (imported models) or the export is refused;
* conlearn's ``bias_atom_e`` is deepmd-kit's ``out_bias`` (the fitting's own ``bias_atom_e``
  is written as zeros and added on import);
* statistics: deepmd-kit keeps ``davg/dstd [n_types, nnei, 4]`` (the same row for every
  slot), conlearn ``avg/std [n_types, 4]``.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import torch

from .dp_import import InterchangeError, from_dp_dict, torch_to_dp_dict
from .model import DeepPot, DeepPotSpec, load_model

__all__ = ["InterchangeError", "export_model", "from_dp_dict", "import_model", "read_any",
           "read_dp", "to_dp_dict", "torch_to_dp_dict", "write_dp"]
DP_SUFFIXES = (".dp", ".yaml", ".yml")
TORCH_SUFFIXES = (".pth", ".pt")
_NP = {"float64": np.float64, "float32": np.float32}


# --------------------------------------------------------------------------- .dp files
def _traverse(obj, fn, is_var: bool = False):
    """Apply ``fn`` to every non-None leaf below an ``@variables`` key and to every dict marked
    ``@is_variable`` (an array in deepmd-kit's YAML form): deepmd-kit's rule."""
    if isinstance(obj, dict) and obj.get("@is_variable", False):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _traverse(v, fn, is_var or k == "@variables") for k, v in obj.items()}
    if isinstance(obj, list):
        return [_traverse(v, fn, is_var) for v in obj]
    return fn(obj) if (is_var and obj is not None) else obj


def read_dp(path: str | Path) -> dict:
    """A deepmd-kit ``.dp`` (HDF5) or ``.yaml`` model file as a dict with numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        if path.suffix == ".dp":
            import h5py

            with h5py.File(path, "r") as f:
                data = json.loads(f.attrs["json"])
                return _traverse(data, lambda name: np.array(f[name][()]))
        import yaml

        data = yaml.safe_load(path.read_text())
        return _traverse(data, lambda x: np.asarray(x["value"], dtype=x["dtype"])
                         if isinstance(x, dict) and x.get("@class") == "np.ndarray" else x)
    except (OSError, KeyError, ValueError, TypeError, AttributeError) as err:
        raise InterchangeError(f"{path}: not a readable deepmd-kit model file "
                               f"({type(err).__name__}: {str(err)[:160]})") from None


def write_dp(path: str | Path, data: dict) -> None:
    """Write a model dict as deepmd-kit's ``.dp`` file (atomically: temp file + rename)."""
    import h5py

    from ... import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = iter(range(10 ** 6))
    with h5py.File(tmp, "w") as f:
        body = _traverse(data, lambda x: f.create_dataset(f"variable_{next(count):04d}", data=x).name)
        head = {"software": "conlearn", "version": __version__,
                "time": str(datetime.datetime.now(tz=datetime.timezone.utc))}
        f.attrs["json"] = json.dumps({**head, **body}, separators=(",", ":"))
    tmp.replace(path)


# --------------------------------------------------------------------------- conlearn -> dict
def _layer(w, b, idt, activation: str, resnet: bool, precision: str) -> dict:
    return {"@class": "Layer", "@version": 2, "bias": True, "use_timestep": idt is not None,
            "activation_function": activation, "resnet": resnet, "precision": precision,
            "trainable": True, "@variables": {"w": w, "b": b, "idt": idt}}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _embedding_dict(net, neuron: list[int], resnet_dt: bool, prec: str, where: str) -> dict:
    layers = []
    for k, (lin, kind) in enumerate(zip(net.layers, net.kinds)):
        idt = _np(net.dts[k]) if resnet_dt else None
        if idt is not None and kind == 0:  # deepmd-kit has no time step on a non-residual layer
            if not np.all(idt == 1.0):
                raise InterchangeError(
                    f"{where} layer {k} ({lin.in_features} -> {lin.out_features}, not residual) "
                    "has a resnet_dt time step != 1; deepmd-kit applies time steps on residual "
                    "layers only, so this model (descriptor.resnet_dt true) cannot be exported "
                    "exactly. Train with descriptor.resnet_dt false, or with embedding widths "
                    "that double from 1 (e.g. neuron [2, 4, 8, ...])")
            idt = None
        layers.append(_layer(_np(lin.weight).T.copy(), _np(lin.bias), idt, "tanh", True, prec))
    return {"@class": "EmbeddingNetwork", "@version": 2, "in_dim": 1, "neuron": list(neuron),
            "activation_function": "tanh", "resnet_dt": resnet_dt, "bias": True,
            "precision": prec, "layers": layers}


def _fitting_net_dict(net, n_in: int, neuron: list[int], resnet_dt: bool, prec: str,
                      where: str) -> dict:
    layers, widths = [], [n_in, *neuron]
    for k, lin in enumerate(net.hidden):
        if widths[k + 1] == 2 * widths[k]:
            raise InterchangeError(
                f"{where} hidden layer {k} doubles its width ({widths[k]} -> {widths[k + 1]}): "
                "deepmd-kit makes such a layer residual ([x, x] + y), conlearn does not; change "
                "fitting_net.neuron")
        idt = _np(net.dts[k]) if (resnet_dt and net.residual[k]) else None
        layers.append(_layer(_np(lin.weight).T.copy(), _np(lin.bias), idt, "tanh", True, prec))
    layers.append(_layer(_np(net.out.weight).T.copy(), _np(net.out.bias), None, "none", False, prec))
    return {"@class": "FittingNetwork", "@version": 1, "in_dim": n_in, "out_dim": 1,
            "neuron": list(neuron), "activation_function": "tanh", "resnet_dt": resnet_dt,
            "precision": prec, "bias_out": True, "layers": layers}


def to_dp_dict(model: DeepPot) -> dict:
    """The deepmd-kit serialized dict (``{"model", "model_def_script", "@variables"}``) of ``model``.

    Raises :class:`InterchangeError` naming the option when the model cannot be written so
    that deepmd-kit predicts exactly what conlearn does."""
    if hasattr(model, "uncompressed"):  # a compressed model keeps its exact weights
        model = model.uncompressed()
    s, d = model.spec, model.descriptor
    prec, nt, nnei = s.precision, len(s.type_map), int(sum(s.sel))
    ndim = 1 if s.type_one_side else 2
    nets = [None] * (nt ** ndim)
    for ti in range(1 if s.type_one_side else nt):
        for tj in range(nt):
            key = tj if s.type_one_side else ti + nt * tj  # deepmd-kit's NetworkCollection index
            name = f"embedding net ({s.type_map[tj]})" if s.type_one_side else \
                f"embedding net ({s.type_map[ti]}, {s.type_map[tj]})"
            nets[key] = _embedding_dict(d.net(ti, tj), s.neuron, s.embed_resnet_dt, prec, name)
    avg, std = _np(d.avg), _np(d.std)
    if np.any(avg[:, 1:] != 0):
        raise InterchangeError("descriptor avg has non-zero xyz columns; deepmd-kit's padding "
                               "would differ from conlearn's")
    descriptor = {
        "@class": "Descriptor", "type": "se_e2_a", "@version": 2, "rcut": s.rcut,
        "rcut_smth": s.rcut_smth, "sel": list(s.sel), "neuron": list(s.neuron),
        "axis_neuron": s.axis_neuron, "resnet_dt": s.embed_resnet_dt, "trainable": True,
        "type_one_side": s.type_one_side, "exclude_types": [], "env_protection": 0.0,
        "set_davg_zero": False, "activation_function": "tanh", "precision": prec, "spin": None,
        "env_mat": {"rcut": s.rcut, "rcut_smth": s.rcut_smth, "protection": 0.0,
                    "use_exp_switch": False},
        "embeddings": {"@class": "NetworkCollection", "@version": 1, "ndim": ndim, "ntypes": nt,
                       "network_type": "embedding_network", "networks": nets},
        "@variables": {"davg": np.repeat(avg[:, None, :], nnei, axis=1),
                       "dstd": np.repeat(std[:, None, :], nnei, axis=1)},
        "type_map": list(s.type_map),
    }
    fit_nets = [_fitting_net_dict(model.fitting[t], d.dim_out, s.fitting_neuron,
                                  s.fitting_resnet_dt, prec, f"fitting net ({s.type_map[t]})")
                for t in range(nt)]
    fitting = {
        "@class": "Fitting", "@version": 4, "var_name": "energy", "ntypes": nt,
        "dim_descrpt": d.dim_out, "neuron": list(s.fitting_neuron),
        "resnet_dt": s.fitting_resnet_dt, "numb_fparam": 0, "numb_aparam": 0,
        "dim_case_embd": 0, "default_fparam": None, "rcond": None, "activation_function": "tanh",
        "precision": prec, "mixed_types": False, "exclude_types": [],
        "nets": {"@class": "NetworkCollection", "@version": 1, "ndim": 1, "ntypes": nt,
                 "network_type": "fitting_network", "networks": fit_nets},
        "@variables": {"bias_atom_e": np.zeros((nt, 1), dtype=_NP[prec]), "case_embd": None,
                       "fparam_avg": None, "fparam_inv_std": None, "aparam_avg": None,
                       "aparam_inv_std": None},
        "type_map": list(s.type_map), "tot_ener_zero": False, "trainable": [True] * (len(s.fitting_neuron) + 1),
        "layer_name": None, "use_aparam_as_mask": False, "spin": None, "type": "ener",
        "dim_out": 1, "atom_ener": [],
    }
    bias = _np(model.bias_atom_e).reshape(1, nt, 1)
    top = {
        "type_map": list(s.type_map), "atom_exclude_types": [], "pair_exclude_types": [],
        "rcond": None, "preset_out_bias": None,
        "@variables": {"out_bias": bias, "out_std": np.ones_like(bias)},
        "@class": "Model", "@version": 2, "type": "standard",
        "descriptor": descriptor, "fitting": fitting,
    }
    return {"backend": "conlearn", "model": top, "model_def_script": _model_def_script(s),
            "@variables": {}}


def _model_def_script(s: DeepPotSpec) -> dict:
    """The ``model`` section of a deepmd-kit ``input.json`` giving this architecture."""
    return {
        "type_map": list(s.type_map), "type": "standard",
        "descriptor": {"type": "se_e2_a", "sel": list(s.sel), "rcut": s.rcut,
                       "rcut_smth": s.rcut_smth, "neuron": list(s.neuron),
                       "axis_neuron": s.axis_neuron, "type_one_side": s.type_one_side,
                       "resnet_dt": s.embed_resnet_dt, "seed": s.seed,
                       "activation_function": "tanh", "precision": s.precision,
                       "trainable": True, "exclude_types": [], "env_protection": 0.0,
                       "set_davg_zero": False},
        "fitting_net": {"type": "ener", "neuron": list(s.fitting_neuron),
                        "resnet_dt": s.fitting_resnet_dt, "seed": s.seed, "numb_fparam": 0,
                        "numb_aparam": 0, "activation_function": "tanh",
                        "precision": s.precision, "trainable": True, "atom_ener": [],
                        "rcond": None, "use_aparam_as_mask": False},
    }


# --------------------------------------------------------------------------- files
def read_any(path: str | Path) -> dict:
    """The deepmd-kit serialized dict of a ``.dp``/``.yaml``, frozen ``.pth`` or checkpoint ``.pt``."""
    path = Path(path)
    if path.suffix in DP_SUFFIXES:
        return read_dp(path)
    if path.suffix in TORCH_SUFFIXES:
        return torch_to_dp_dict(path)
    raise InterchangeError(f"{path}: unknown deepmd-kit model suffix '{path.suffix}' "
                           f"(known: {', '.join(DP_SUFFIXES + TORCH_SUFFIXES)})")


def export_model(src_model_path: str | Path, out_path: str | Path) -> Path:
    """Write the conlearn model at ``src_model_path`` as deepmd-kit's ``out_path`` (``.dp``)."""
    out = Path(out_path)
    if out.suffix != ".dp":
        raise InterchangeError(f"{out}: the exported file must end in .dp (deepmd-kit reads "
                               "the format from the suffix; `dp convert-backend X.dp X.pth` "
                               "then gives a PyTorch model)")
    model = load_model(src_model_path)
    try:
        data = to_dp_dict(model)
    except InterchangeError as err:
        raise InterchangeError(f"{src_model_path}: {err}") from None
    write_dp(out, data)
    return out


def import_model(src_path: str | Path, out_model_path: str | Path) -> DeepPot:
    """Read a deepmd-kit se_e2_a model (``.dp``, ``.yaml``, ``.pth`` or ``.pt``) and save it
    as a conlearn model at ``out_model_path``; returns the model."""
    src = Path(src_path)
    if not src.is_file():
        raise FileNotFoundError(f"model file {src} does not exist")
    data = read_any(src)
    try:
        model = from_dp_dict(data)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        what = err if isinstance(err, InterchangeError) else f"{type(err).__name__}: {err}"
        raise InterchangeError(f"{src}: {what}") from None
    model.save(out_model_path, imported_from=src.name,
               deepmd_version=str(data.get("version", "unknown")))
    return model
