"""Parses a Prometheus text exposition (stdin) with the official Python client's
parser, prometheus_client (installed by scripts/test.sh), and prints its samples as
JSON: [{"family", "type", "name", "labels", "value"}]. A text the parser refuses
makes it exit non-zero with the parser's error."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    samples = []
    for family in text_string_to_metric_families(sys.stdin.read()):
        for s in family.samples:
            value = s.value
            if math.isinf(value):
                value = "+Inf" if value > 0 else "-Inf"
            samples.append(
                {
                    "family": family.name,
                    "type": family.type,
                    "name": s.name,
                    "labels": s.labels,
                    "value": value,
                }
            )
    json.dump(samples, sys.stdout)


if __name__ == "__main__":
    main()
