"""Regenerate schemas/*.schema.json from the models: python -m schemas"""

import json
from pathlib import Path

from schemas.messages import MESSAGE_MODELS

HERE = Path(__file__).resolve().parent


def render(name: str) -> str:
    schema = MESSAGE_MODELS[name].model_json_schema(mode="validation")
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    for name in MESSAGE_MODELS:
        (HERE / f"{name}.schema.json").write_text(render(name))


if __name__ == "__main__":
    main()
