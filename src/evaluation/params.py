"""The params schema: loading, validation and one-line errors.

An evaluator writes ``params/<name>.yaml``; it is validated here before anything runs.
Unknown keys, wrong types and impossible values raise :class:`~evaluation.errors.InputError`
naming the file and the dotted key, so the command line can print one line and exit 2.

The schema is a pydantic model per design, selected by the ``design`` key. Keys shared by
every design live in :class:`BaseParams`. Checks that need the data (a date outside the
data, too short a pre-period, an unknown area) happen when the data are loaded, and raise
the same kind of error with the same key.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from evaluation import config
from evaluation.errors import InputError

_MONTH = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
#: Whole years that pandas timestamps (nanoseconds since 1970) can hold.
_TIMESTAMP_YEARS = (1678, 2261)


def _as_month_start(value: Any) -> str:
    """Normalise ``2021-06``, ``2021-06-15`` or a date to ``2021-06-01``."""
    if isinstance(value, date):
        value = value.isoformat()
    if not isinstance(value, str) or not _MONTH.match(value):
        raise ValueError("expected a date like 2021-06 or 2021-06-01")
    try:
        day = date.fromisoformat(value if len(value) > 7 else value + "-01")
    except ValueError as err:
        raise ValueError(f"not a real date: {value}") from err
    if not _TIMESTAMP_YEARS[0] <= day.year <= _TIMESTAMP_YEARS[1]:
        raise ValueError(f"not a real date: {value}")  # outside what pandas can hold
    return day.strftime("%Y-%m-01")


Month = Annotated[str, Field(description="a month: YYYY-MM or YYYY-MM-DD")]


def _number(value: Any) -> Any:
    """Numbers for float keys: true/false is not a number (pydantic would read it as 1/0)."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


#: A float key: ints and numeric text (YAML reads ``1e6`` as text) accepted, booleans not.
Number = Annotated[float, Field(strict=False), BeforeValidator(_number)]


class _Strict(BaseModel):
    # strict: no silent conversions (``true`` is not the integer 1, ``"3"`` not 3, bytes
    # from a ``!!binary`` tag are not text); floats opt out through ``Number``
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataParams(_Strict):
    """Where the data come from.

    Police.uk data come from the embedded database (the synthetic default unless
    ``--database`` names another); a tidy CSV is used when ``csv`` is given.
    """

    csv: str | None = None
    unit: str | None = None
    time: str | None = None
    outcome: str | None = None
    offset: str | None = None
    units: list[str] | None = None
    crime_types: list[str] | None = None
    area_level: str = "ward"
    lookup: str | None = None
    start: str | None = None
    end: str | None = None
    population_offset: bool = False
    first_treat: str | None = None
    aggregate: Literal["none", "quarter"] = "none"  # quarters help small counts

    @field_validator("start", "end", mode="before")
    @classmethod
    def _month(cls, v: Any) -> str | None:
        return None if v is None else _as_month_start(v)

    @field_validator("crime_types")
    @classmethod
    def _known_types(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        known = set(config.CRIME_TYPES) | set(config.OLD_CRIME_TYPES)
        unknown = [t for t in v if t not in known]
        if unknown:
            raise ValueError(
                f"unknown crime type {unknown[0]!r}; expected one of: "
                + ", ".join(config.CRIME_TYPES)
            )
        return [config.OLD_CRIME_TYPES.get(t, t) for t in v]

    @model_validator(mode="after")
    def _csv_needs_columns(self) -> DataParams:
        if self.csv is not None:
            for key in ("time", "outcome"):
                if getattr(self, key) is None:
                    raise ValueError(f"data.{key} is required when data.csv is given")
        elif self.crime_types is None:
            raise ValueError("give data.crime_types (police.uk data) or data.csv (a tidy CSV)")
        return self

    @model_validator(mode="after")
    def _window_in_order(self) -> DataParams:
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"data.end is before data.start ({self.end[:7]} < {self.start[:7]})")
        return self

    @property
    def is_csv(self) -> bool:
        """True when the data are a tidy CSV rather than police.uk counts."""
        return self.csv is not None


class OutcomeParams(_Strict):
    """What the outcome is called and what kind of measure it is."""

    label: str
    measure: Literal["victim", "activity", "other"] = "other"


class CheckParams(_Strict):
    """A secondary outcome fitted with the same model (e.g. a victim-based check)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    crime_types: list[str]
    measure: Literal["victim", "activity", "other"] = "victim"

    @field_validator("crime_types")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        return DataParams._known_types(v) or []


class InterventionParams(_Strict):
    """When and where the intervention happened."""

    start: str | int | None = None  # a month, or an integer period for generic panels
    end: str | int | None = None
    phase_in: int = Field(default=0, ge=0, le=24)
    treated: list[str] | None = None
    starts: dict[str, str] | None = None  # staggered: area -> start month
    group: str | None = None  # repeated cross-sections: 0/1 treated-group column
    post: str | None = None  # repeated cross-sections: 0/1 post column
    treatment: str | None = None  # a 0/1 treatment column in the CSV
    cost_gbp: Number | None = Field(default=None, ge=0)
    cost_note: str = ""  # where the cost comes from (shown beside every cost figure)
    deflator: tuple[Number, Number] | None = None  # GDP deflator: 2015/16 index, cost year index

    @field_validator("start", "end", mode="before")
    @classmethod
    def _month(cls, v: Any) -> str | int | None:
        if v is None or isinstance(v, int) and not isinstance(v, bool):
            return v  # integer periods for generic panels
        return _as_month_start(v)

    @field_validator("starts", mode="before")
    @classmethod
    def _months(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): _as_month_start(s) for k, s in v.items()}
        return v


class ModelParams(_Strict):
    """The statistical model."""

    family: Literal["poisson", "quasipoisson", "negbin", "gaussian"] = "quasipoisson"
    seasonality: str = "fourier:2"
    slope_change: bool = True
    se: Literal["hac", "model"] = "model"
    hac_lags: int | None = Field(default=None, ge=0, le=36)
    interruptions: Literal["welsh_covid", "none"] = "welsh_covid"
    level: Number = Field(default=config.DEFAULT_LEVEL, gt=0.5, lt=1)
    inference: Literal["auto", "cr1", "wild_bootstrap", "randomization", "conventional"] = "auto"
    replications: int = Field(default=9999, ge=99, le=1_000_000)
    seed: int = config.DEFAULT_SEED
    control_group: Literal["never_treated", "not_yet_treated"] = "never_treated"
    event_window: tuple[int, int] = Field(default=(-12, 24), strict=False)  # YAML: a list

    @field_validator("seasonality")
    @classmethod
    def _season(cls, v: str) -> str:
        if v in ("none", "month") or re.fullmatch(r"fourier:[1-6]", v):
            return v
        raise ValueError("expected none, month or fourier:K with K from 1 to 6")

    @model_validator(mode="after")
    def _lags_need_hac(self) -> ModelParams:
        if self.hac_lags is not None and self.se != "hac":
            raise ValueError("model.hac_lags is only used with model.se: hac")
        return self


class ComparisonParams(_Strict):
    """How comparison areas are chosen: listed, or matched on pre-period level and trend."""

    areas: list[str] | None = None
    method: Literal["listed", "matched", "all"] = "matched"
    n: int = Field(default=8, ge=1, le=500)
    exclude: list[str] = Field(default_factory=list)


class BufferParams(_Strict):
    """Areas where crime could be displaced to (excluded from comparisons)."""

    areas: list[str] | None = None
    adjacent: bool = False


class BaseParams(_Strict):
    """Keys every design shares."""

    title: str
    description: str = ""
    data: DataParams
    outcome: OutcomeParams
    intervention: InterventionParams = InterventionParams()
    model: ModelParams = ModelParams()
    checks: list[CheckParams] = Field(default_factory=list)


class ItsParams(BaseParams):
    """Interrupted time series (optionally controlled by a comparison series)."""

    design: Literal["its"]
    comparison: ComparisonParams | None = None

    @model_validator(mode="after")
    def _needs_start(self) -> ItsParams:
        if self.intervention.start is None:
            raise ValueError("intervention.start is required for an ITS")
        return self


class DidParams(BaseParams):
    """Difference-in-differences: 2x2, TWFE or PPML, with an event study."""

    design: Literal["did"]
    comparison: ComparisonParams = ComparisonParams()
    buffer: BufferParams = BufferParams()


class StaggeredParams(BaseParams):
    """Staggered adoption (Callaway & Sant'Anna)."""

    design: Literal["staggered_did"]
    comparison: ComparisonParams = ComparisonParams(method="all")
    buffer: BufferParams = BufferParams()


class SyntheticControlParams(BaseParams):
    """Synthetic control (or synthetic DiD) for one or a few treated areas."""

    design: Literal["synthetic_control"]
    method: Literal["synthetic_control", "sdid"] = "synthetic_control"
    comparison: ComparisonParams = ComparisonParams(method="all")
    buffer: BufferParams = BufferParams()


class PowerSpec(_Strict):
    """A planned evaluation whose minimum detectable effect is simulated."""

    design: Literal["its", "did"] = "did"
    post_periods: list[int] = Field(default_factory=lambda: [12, 24, 36])
    effects: list[float] = Field(default_factory=lambda: [0.7, 0.8, 0.85, 0.9, 0.95])
    simulations: int = Field(default=500, ge=50, le=100_000)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    target_power: float = Field(default=0.8, gt=0.5, lt=1)

    @field_validator("effects")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
        if not v or any(not (0 < x < 2) or x == 1 for x in v):
            raise ValueError("effects are rate ratios between 0 and 2, other than 1")
        return v


class PowerParams(BaseParams):
    """Minimum detectable effect of a planned ITS or DiD, simulated on pre-period data."""

    design: Literal["power"]
    power: PowerSpec = PowerSpec()
    comparison: ComparisonParams = ComparisonParams()
    buffer: BufferParams = BufferParams()


class ProfileSpec(_Strict):
    """A scrutiny profile: two 12-month comparison years and how areas are grouped."""

    years: tuple[str, str]  # first months of the two 12-month years, e.g. 2019-04, 2020-04
    area_level: str = "sector"
    top_n: int = Field(5, ge=1, le=50)

    @field_validator("years", mode="before")
    @classmethod
    def _months(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            return tuple(_as_month_start(s) for s in v)
        return v


class ProfileParams(BaseParams):
    """A descriptive profile of recorded crime (no causal design)."""

    design: Literal["profile"]
    profile: ProfileSpec


Params = Annotated[
    ItsParams | DidParams | StaggeredParams | ProfileParams | SyntheticControlParams | PowerParams,
    Field(discriminator="design"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Params)

DESIGNS = ("its", "did", "staggered_did", "profile", "synthetic_control", "power")


#: libyaml's parser when PyYAML has it: a params file listing thousands of areas parses in
#: a hundredth of a second, not a tenth. The checks below are the same either way.
_YAML_BASE: type = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class _SafeLoader(_YAML_BASE):  # type: ignore[misc,valid-type]
    """Safe YAML that refuses duplicate keys (a silent override is a wrong answer) and
    keeps dates as text, so that an impossible date is reported against its key."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


#: A params file is a page of YAML; anything bigger is not one (and is not read whole).
MAX_PARAMS_BYTES = 1 << 20


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InputError(path, "params file not found")
    if path.is_dir():
        raise InputError(path, "params path is a folder, not a YAML file")
    if not path.is_file():
        raise InputError(path, "params path is not a regular file (a device or a pipe?)")
    try:
        if path.stat().st_size > MAX_PARAMS_BYTES:
            raise InputError(path, f"too large for a params file (over {MAX_PARAMS_BYTES} bytes)")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise InputError(path, "not UTF-8 text: save it as UTF-8", line=line) from None
    except OSError as err:
        raise InputError(path, f"cannot read the params file: {err.strerror or err}") from None
    try:
        payload = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark.line + 1 if err.problem_mark else None
        raise InputError(path, f"invalid YAML: {err.problem}", line=mark) from None
    except yaml.reader.ReaderError as err:  # a character YAML refuses, e.g. a NUL byte
        line = text[: err.position].count("\n") + 1
        raise InputError(
            path, f"invalid YAML: {err.reason} (#x{err.character:04x})", line=line
        ) from None
    except yaml.YAMLError as err:
        raise InputError(path, f"invalid YAML: {err}") from None
    except RecursionError:
        raise InputError(path, "invalid YAML: nested too deeply") from None
    if not isinstance(payload, dict):
        raise InputError(path, "params must be a mapping of keys to values")
    return payload


def _error_key(err: Mapping[str, Any]) -> str:
    parts = [str(p) for p in err.get("loc", ()) if not str(p).endswith("Params")]
    # pydantic puts the discriminator's tag first ("its.data.csv"): drop it
    if parts and parts[0] in DESIGNS:
        parts = parts[1:]
    return ".".join(parts) or "<root>"


def _message(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown design; expected one of: {', '.join(DESIGNS)}"
    if kind == "union_tag_not_found":
        return f"required key 'design' is missing; expected one of: {', '.join(DESIGNS)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a mapping of keys to values"
    if kind in ("list_type", "tuple_type"):
        return "expected a list, e.g. [a, b]"
    expected = _EXPECTED.get(str(kind))
    if expected:
        return f"expected {expected}, not {_shown(err.get('input'))}"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


#: pydantic error types -> what the key wants, in words
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
}


def _shown(value: Any) -> str:
    """A value as the evaluator wrote it in YAML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return "binary data"
    if value is None:
        return "nothing"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_params(path: str | Path) -> Params:
    """Read and validate a params file.

    Parameters
    ----------
    path
        The YAML file.

    Returns
    -------
    ItsParams | DidParams | StaggeredParams
        The validated, frozen params.

    Raises
    ------
    InputError
        Naming the file and the first offending key.
    """
    path = Path(path)
    payload = _read_yaml(path)
    try:
        return _ADAPTER.validate_python(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = _error_key(first)
        if first.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            key = "design"
        # a model-level check names its own key in the message
        msg = _message(first)
        m = re.match(r"^([a-z_]+\.[a-z_.]+) ", msg)
        if m and first.get("type") == "value_error":
            key, msg = m.group(1), msg[m.end() :]
        raise InputError(path, msg, key=key) from None


def params_hash(path: Path) -> str:
    """sha256 of the params file's bytes (provenance)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def params_dict(params: BaseModel) -> dict[str, Any]:
    """The validated params as plain JSON-able data (defaults filled in)."""
    return json.loads(params.model_dump_json())


def resolve(params_file: Path, relative: str) -> Path:
    """Resolve a path in params relative to the params file's folder."""
    candidate = Path(relative)
    return candidate if candidate.is_absolute() else (Path(params_file).parent / candidate)
