"""Parse a Triton ``config.pbtxt`` with Triton's own model-config protobuf and print it as JSON (proto3's JSON
mapping, field names as in the file): a misspelt field, a wrong type or an unknown enum value fails here as it
fails in Triton. Exit status 1, with the parser's message on stderr, when it does not parse.

Run by the tritonclient[grpc] environment's interpreter as a script (``python -I triton_config.py FILE``), so it
imports only the standard library and that environment's tritonclient and protobuf, never this project.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2


def main(argv: list[str]) -> int:
    path = Path(argv[1])
    try:
        config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    except (OSError, text_format.ParseError) as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
