"""One DP pass over the private rows: aggregate, combine, then noise once per key."""
from __future__ import annotations

import logging
from typing import Iterable, Iterator, Optional

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from dpsynth import algorithm
from dpsynth.algorithm import RunState
from dpsynth.calibration import ReleasePlan
from dpsynth.noise import noise_source
from dpsynth.params import SynthesisConfig
from dpsynth.private_stats import Stats
from dpsynth.released import ReleasedStats
from dpsynth.validation import ValidBatch

LOG = logging.getLogger("dpsynth")


class AccumulatePassStatsFn(beam.DoFn):
    """ValidBatch -> (class_id, Stats): exact partial sums, one per class per bundle.

    Holding the bundle's sums and emitting them in finish_bundle sends O(k d)
    per class per bundle downstream instead of one element per batch.
    """

    def start_bundle(self) -> None:
        self._partials: dict[int, Stats] = {}

    def process(self, batch: ValidBatch, state: RunState) -> None:
        spec = state.next_pass
        for class_id, stats in algorithm.batch_stats(batch, spec).items():
            if class_id in self._partials:
                self._partials[class_id].add(stats)
            else:
                self._partials[class_id] = stats

    def finish_bundle(self) -> Iterator:
        for class_id, stats in self._partials.items():
            yield GlobalWindows.windowed_value((class_id, stats))
        self._partials = {}


class SumStatsFn(beam.CombineFn):
    """Exact sum of Stats; None (a public key with no rows yet) adds nothing.

    Pure: no noise here. Noise in accumulate or merge would be drawn once per
    worker or per merge, not once per released aggregate.
    """

    def create_accumulator(self) -> Optional[Stats]:
        return None

    def add_input(self, accumulator: Optional[Stats], element: Optional[Stats]) -> Optional[Stats]:
        if element is None:
            return accumulator
        if accumulator is None:
            return element.copy()
        return accumulator.add(element)

    def merge_accumulators(self, accumulators: Iterable[Optional[Stats]]) -> Optional[Stats]:
        merged = None
        for accumulator in accumulators:
            merged = self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator: Optional[Stats]) -> Optional[Stats]:
        return accumulator


def _public_keys(state: RunState) -> list[tuple[int, None]]:
    return [(key, None) for key in algorithm.release_keys(state.next_pass)]


def _release(element: tuple[int, Optional[Stats]], state: RunState, dimension: int,
             config: SynthesisConfig) -> tuple[int, ReleasedStats]:
    class_id, exact = element
    return class_id, algorithm.release_class_stats(class_id, exact, state.next_pass, dimension,
                                                   noise_source(config.noise_seed, config.disable_noise))


def _advance(released: dict[int, ReleasedStats], state: RunState, plan: ReleasePlan, config: SynthesisConfig
             ) -> RunState:
    spec = state.next_pass
    following = algorithm.advance(state, released, plan, config)
    # One line per finished pass (released facts only: the pass and how many keys it released).
    LOG.info("pass %d of %d (%s) finished: %d classes released", spec.index + 1, algorithm.num_passes(config),
             spec.name, len(released))
    return following


class ReleasePass(beam.PTransform):
    """PCollection[ValidBatch] -> singleton PCollection[RunState] after one more pass.

    The state before the pass is a side input: it holds the pass's partition
    of each class (whole class, SimHash buckets or nearest released centre).
    """

    def __init__(self, state: beam.PCollection, plan: ReleasePlan, config: SynthesisConfig) -> None:
        super().__init__()
        self._state = state
        self._plan = plan
        self._config = config

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        full_state = beam.pvalue.AsSingleton(self._state)
        # RunState without the releases kept for the fit: what every worker reads
        state = beam.pvalue.AsSingleton(self._state | "ForWorkers" >> beam.Map(RunState.for_workers))
        # (class_id, Stats) exact partial sums per bundle; the scatter under passes.POOLED_KEY
        partials = batches | "Accumulate" >> beam.ParDo(AccumulatePassStatsFn(), state=state)
        # (class_id, None) for every public key, so empty classes get noise too
        keys = self._state | "PublicKeys" >> beam.FlatMap(_public_keys)
        # (class_id, Stats | None) exact totals after the global combine
        combined = ((partials, keys) | "WithEveryKey" >> beam.Flatten()
                    | "Combine" >> beam.CombinePerKey(SumStatsFn()))
        # (class_id, ReleasedStats): the only place noise is drawn, once per key
        released = combined | "AddNoise" >> beam.Map(_release, state=state, dimension=self._plan.dimension,
                                                     config=self._config)
        # RunState for the next pass, computed from released values only
        return (released | "Collect" >> beam.combiners.ToDict()
                | "Advance" >> beam.Map(_advance, state=full_state, plan=self._plan, config=self._config))
