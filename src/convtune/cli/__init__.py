"""Command line: thin verbs that parse, build a config and call the library.

    convtune train --data sms_spam --out runs/sms
    convtune evaluate runs/sms --data sms_spam
    convtune predict runs/sms "WIN a FREE phone now!!!"
    convtune export runs/sms --int8 && convtune serve runs/sms-onnx-int8
    convtune datasets | convtune encoders

Heavy libraries (torch, transformers) are imported inside the verbs that need them.
Expected failures print one `error:` line and exit with status 2.
"""

from __future__ import annotations

import sys

from convtune.cli.options import parser
from convtune.cli.verbs import VERBS
from convtune.errors import ConvtuneError


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return VERBS[args.verb](args)
    except ConvtuneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permission denied ...: one line, not a traceback
        print(f"error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no finished output was written (rerun `predict --output` to resume)",
              file=sys.stderr)
        return 130

