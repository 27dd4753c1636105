"""What an MNIST run reports: the test-set evaluation (once, after training), its
``results.json``, parameters and plots, and the ladder's tables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxphys as jp
from jaxphys import checkpoint, plots
from jaxphys.experiments.environment import environment
from jaxphys.experiments.runner import write_json

__all__ = ["report", "label", "summary_line", "table", "per_class_table", "write_ladder"]


def label(config) -> str:
  """``"cnn + full"``: the model and its augmentation.

  >>> from jaxphys.experiments.mnist import Config
  >>> label(Config(model="cnn", augmentation="full"))
  'cnn + full'
  """
  return config.model if config.augmentation == "none" else f"{config.model} + {config.augmentation}"


def _selected(config, history: dict, epoch: int) -> dict:
  """The epoch kept (1-based ``epoch``, chosen on the validation split) and its values."""
  values = np.asarray(history[config.monitor], dtype=np.float64)
  best = epoch - 1
  return {"monitor": config.monitor, "epoch": epoch, "value": float(values[best]),
          "epochs_trained": int(len(values)),
          "valid_accuracy": float(history["eval_accuracy"][best]),
          "valid_loss": float(history["eval_loss"][best])}


def _test_metrics(model, state, x_test, y_test, class_names, precision) -> dict:
  logits = jp.predict(model.apply, state, x_test, batch_size=1000, precision=precision)
  probs = jax.nn.softmax(logits)
  pred = np.asarray(jnp.argmax(probs, -1))
  return {"test_accuracy": float(jp.accuracy(y_test, probs)),
          "test_loss": float(jnp.mean(jp.softmax_cross_entropy(logits, y_test))),
          "macro_auc": float(jp.roc_auc(y_test, probs)),
          "per_class": {
              "names": list(class_names),
              "precision": np.asarray(jp.precision(y_test, probs, average=None)).tolist(),
              "recall": np.asarray(jp.recall(y_test, probs, average=None)).tolist(),
              "auc": np.asarray(jp.roc_auc(y_test, probs, average=None)).tolist()},
          "confusion_matrix": np.asarray(jp.confusion_matrix(y_test, pred, len(class_names))).tolist(),
          "_pred": pred}


def report(config, ds, model, state, history, split, staging: Path, aug, key, extra: dict) -> dict:
  """Evaluates the selected ``state`` on the test set and writes ``staging``'s files;
  ``extra`` (wall time, resumption) goes into the results as it is. Used by
  :func:`jaxphys.experiments.mnist.train_and_evaluate`, which has the example."""
  (x, y), (x_test, y_test) = split["train"], split["test"]
  extra = dict(extra)
  test = _test_metrics(model, state, x_test, y_test, ds.class_names, config.precision)
  pred = test.pop("_pred")
  epoch_s = np.asarray(history["epoch_seconds"])
  hist = {k: np.asarray(v).tolist() for k, v in history.items() if k != "compilation"}
  results = {
      "dataset": ds.name, "model": config.model, "augmentation": config.augmentation,
      "augment": config.augmentation != "none", "epochs": config.epochs, "seed": config.seed,
      "config": dataclasses.asdict(config), "data_source": ds.source, "data_sha256": split["identity"],
      "n_train": int(len(x)), "n_valid": int(len(split["valid"][1])), "n_test": int(len(x_test)),
      "batch_size": split["batch_size"],
      "selected": _selected(config, history, extra.pop("selected_epoch")), **test,
      "train_seconds": float(epoch_s.sum()), **extra,
      "images_per_second": len(x) / float(np.median(epoch_s[1:] if len(epoch_s) > 1 else epoch_s)),
      "history": hist, "environment": environment({config.model: history.get("compilation")})}
  write_json(staging / "results.json", results)
  checkpoint.save_params(staging / "params.msgpack", state.params)
  if state.model_state:
    checkpoint.save_params(staging / "model_state.msgpack", state.model_state)
  checkpoint.save_model(staging / "model", model, state)  # jaxphys.checkpoint.load_model(...)
  _plots(results, ds, history, pred, staging, x, y, aug, key)
  return results


def _plots(results, ds, history, pred, staging, x, y, aug, key) -> None:
  name = f"{label_of(results)} on {ds.name}"
  y_test = ds.y_test
  plots.save_learning_curves(staging / "learning_curves.png", history, title=name)
  plots.save_confusion_matrix(staging / "confusion_matrix.png", np.asarray(results["confusion_matrix"]),
                              ds.class_names, title=f"{name}: test accuracy {results['test_accuracy']:.4f}")
  wrong = np.nonzero(pred != y_test)[0][:40]
  plots.save_image_grid(staging / "misclassified.png", ds.x_test[wrong],
                        [f"{ds.class_names[y_test[i]]}→{ds.class_names[pred[i]]}" for i in wrong],
                        title=f"misclassified test images (true→predicted), {name}")
  # One image of every class (the training file may be sorted by class), three draws.
  shown = np.concatenate([np.nonzero(y == c)[0][:1] for c in np.unique(y)])
  images = x[shown]
  if aug is None:
    plots.save_image_grid(staging / "augmented.png", images, title="training inputs (no augmentation)")
    return
  draws = np.stack([np.asarray(jax.jit(aug)(k, jnp.asarray(images))) for k in jax.random.split(key, 3)])
  plots.save_figure(plots.augmentation_grid(images, draws, y[shown], class_names=ds.class_names,
                                            title=f"training inputs as the model saw them ({name})"),
                    staging / "augmented.png")


def label_of(results: dict) -> str:
  """:func:`label` of a run's results."""
  a = results["augmentation"]
  return results["model"] if a == "none" else f"{results['model']} + {a}"


def summary_line(r: dict) -> str:
  """One line on a run: test accuracy, the epoch selected on validation, time.

  >>> row = {"model": "cnn", "augmentation": "full", "test_accuracy": 0.99, "macro_auc": 0.9999,
  ...        "per_class": {"names": ["0", "1"], "precision": [1.0, 0.98], "recall": [0.98, 1.0],
  ...                      "auc": [1.0, 0.9998]}, "selected": {"epoch": 7, "epochs_trained": 8,
  ...        "monitor": "eval_loss", "value": 0.03}, "images_per_second": 900.0, "wall_seconds": 60.0}
  >>> summary_line(row)
  'cnn + full: test accuracy 0.9900 (epoch 7 of 8 selected on validation: eval_loss 0.0300; 60 s, 900 images/s)'
  """
  s = r["selected"]
  return (f"{label_of(r)}: test accuracy {r['test_accuracy']:.4f} (epoch {s['epoch']} of "
          f"{s['epochs_trained']} selected on validation: {s['monitor']} {s['value']:.4f}; "
          f"{r['wall_seconds']:.0f} s, {r['images_per_second']:,.0f} images/s)")


def table(rows: list) -> str:
  """Markdown table of the runs: test accuracy, macro AUC, class recalls, speed.

  >>> row = {"model": "cnn", "augmentation": "full", "test_accuracy": 0.99, "macro_auc": 0.9999,
  ...        "per_class": {"names": ["0", "1"], "precision": [1.0, 0.98], "recall": [0.98, 1.0],
  ...                      "auc": [1.0, 0.9998]}, "selected": {"epoch": 7, "epochs_trained": 8,
  ...        "monitor": "eval_loss", "value": 0.03}, "images_per_second": 900.0, "wall_seconds": 60.0}
  >>> print(table([row]).splitlines()[-1])
  | cnn + full | 0.9900 | 0.9999 | 0.980 / 1.000 | 7 | 900 | 60 |
  """
  lines = ["| model | test accuracy | macro AUC | min/max class recall | selected epoch | images/s "
           "| wall s |", "| --- | --- | --- | --- | --- | --- | --- |"]
  for r in rows:
    rec = r["per_class"]["recall"]
    lines.append(f"| {label_of(r)} | {r['test_accuracy']:.4f} | {r['macro_auc']:.4f} | "
                 f"{min(rec):.3f} / {max(rec):.3f} | {r['selected']['epoch']} | "
                 f"{r['images_per_second']:,.0f} | {r['wall_seconds']:.0f} |")
  return "\n".join(lines)


def per_class_table(rows: list) -> str:
  """One line per class; per run: test precision / recall / one-vs-rest AUC.

  >>> row = {"model": "cnn", "augmentation": "full", "test_accuracy": 0.99, "macro_auc": 0.9999,
  ...        "per_class": {"names": ["0", "1"], "precision": [1.0, 0.98], "recall": [0.98, 1.0],
  ...                      "auc": [1.0, 0.9998]}, "selected": {"epoch": 7, "epochs_trained": 8,
  ...        "monitor": "eval_loss", "value": 0.03}, "images_per_second": 900.0, "wall_seconds": 60.0}
  >>> print(per_class_table([row]).splitlines()[-1])
  | 1 | 0.980 / 1.000 / 0.9998 |
  """
  names = rows[0]["per_class"]["names"]
  lines = ["| class | " + " | ".join(f"{label_of(r)}: precision / recall / AUC" for r in rows) + " |",
           "| --- |" + " --- |" * len(rows)]
  for c, name in enumerate(names):
    cells = [f"{r['per_class']['precision'][c]:.3f} / {r['per_class']['recall'][c]:.3f} / "
             f"{r['per_class']['auc'][c]:.4f}" for r in rows]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def write_ladder(path: Path, rows: list) -> Path:
  """The ladder's summary: one record per rung, without the histories.

  >>> import tempfile, pathlib
  >>> path = write_ladder(pathlib.Path(tempfile.mkdtemp()) / "ladder.json", [{"model": "cnn", "history": {}}])
  >>> import json
  >>> json.loads(path.read_text())
  [{'model': 'cnn'}]
  """
  return write_json(path, [{k: v for k, v in r.items() if k != "history"} for r in rows])
