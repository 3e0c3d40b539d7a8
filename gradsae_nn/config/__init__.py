"""One typed configuration for every run: each option defined once, with its type, default, help and check.

Frozen dataclasses, nested by concern (`ModelConfig`, `RemoteConfig`, `DataConfig`, `MethodConfig`,
`SteeringConfig`) inside one config per script (`AnswerRunConfig`, `PerturbConfig`, `SteerConfig`,
`SteerSweepConfig`, `StatsConfig`, `SweepConfig`). Every script's command line is generated from its config (`cli.parse`);
library functions take configs or plain arguments and never mutate them (`dataclasses.replace` makes a
changed copy); a preset is just a config. Checks run in `__post_init__`, so a bad value fails before any
work, in the caller's words (`OptionError`: parameter names here, flags on the command line).

Option metadata (`option(...)`): `help`; `result=True` when the option changes results, which puts a
non-default value into the default output folder's name and `run_config.json` (`result_options`);
`flags`, `metavar`, `choices` and `default_text` for the command line.
"""

from .options import (DEFAULT_KS, RESULT_ORDER, build, changed_result_options, fields_of, leaves, need, option, part,
                      positive, result_defaults, result_options)
from .parts import DataConfig, MethodConfig, ModelConfig, RemoteConfig
from .runs import (AnswerRunConfig, ExperimentConfig, FaithfulnessConfig, PerturbConfig, ProtocolAblationConfig, RunConfig,
                   StatsConfig, SteerConfig, SteeringConfig, SteerSweepConfig, SweepConfig)

__all__ = ["DEFAULT_KS", "RESULT_ORDER", "AnswerRunConfig", "DataConfig", "ExperimentConfig", "FaithfulnessConfig",
           "MethodConfig",
           "ModelConfig", "PerturbConfig", "ProtocolAblationConfig", "RemoteConfig", "RunConfig", "StatsConfig", "SteerConfig", "SteeringConfig",
           "SteerSweepConfig", "SweepConfig", "build", "changed_result_options", "fields_of", "leaves", "need", "option",
           "part", "positive", "result_defaults", "result_options"]
