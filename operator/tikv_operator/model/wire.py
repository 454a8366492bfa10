"""The base of every model that crosses the Kubernetes API: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError
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

    def merge_patch(self, exclude: set[str] | None = None) -> dict[str, Any]:
        """The fields this object was given, camelCase, as a JSON merge patch: a field given None is null
        (the merge patch removes it), a field not given stays out. Values are not converted to JSON types
        (mode "python"): free-form fields reach the API client exactly as the code built them."""
        return self.model_dump(by_alias=True, exclude_unset=True, exclude=exclude)

    @classmethod
    def read(cls, raw: object) -> Self:
        """An object another writer stored, field by field: a value this version cannot validate (a newer
        operator's) is kept as stored instead of failing the whole object, so every reader sees what is there."""
        fields: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
        try:
            return cls.model_validate(fields)
        except ValidationError as error:
            unreadable = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
        model = cls.model_validate({k: v for k, v in fields.items() if k not in unreadable})
        names = {info.alias or name: name for name, info in cls.model_fields.items()}
        return model.model_copy(update={names[k]: fields[k] for k in unreadable if k in names})


# RFC 3339 timestamps, as Kubernetes writes them ("2026-11-25T03:55:00Z").
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
SecretName = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
          description="Name of a Secret in the namespace of this TiKVCluster."),
]
