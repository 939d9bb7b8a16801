"""Analyse the clothing classifier (MobileNetV2 transfer learning) with modelstats."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import modelstats  # noqa: E402
from modelstats.models import clothing_classifier  # noqa: E402


def main() -> None:
    model = clothing_classifier()
    graph = modelstats.to_networkx(model)
    params = sum(d["params"] for _, d in graph.nodes(data=True))
    print(f"{model.name}: {graph.number_of_nodes()} operation calls, {params:,} parameters")


if __name__ == "__main__":
    main()
