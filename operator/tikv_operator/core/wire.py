"""The base of every model that crosses the Kubernetes API: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        # The API server already rejects unknown fields people write; fields a newer operator
        # version added must not break an older one reading the same object.
        extra="ignore",
        frozen=True,
    )

    def wire(self) -> dict[str, object]:
        """The JSON-ready body as the API server stores it (camelCase, no unset optionals)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# RFC 3339 timestamps, as Kubernetes writes them ("2026-11-25T03:55:00Z").
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
SecretName = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
          description="Name of a Secret in the namespace of this TiKVCluster."),
]
