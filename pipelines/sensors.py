"""What a landing sensor answers: a partition for every new source, a run for every new or
changed one, and the stamps seen as the cursor."""

import dagster as dg


def landing_sensor_result(
    context: dg.SensorEvaluationContext,
    partitions: dg.DynamicPartitionsDefinition,
    current: dict[str, str],
) -> dg.SensorResult:
    """Runs for the sources whose stamp differs from the cursor's, partitions for new ones.

    Args:
        context: the sensor's context (its cursor holds ``name<TAB>stamp`` lines).
        partitions: the dynamic partitions, one per source.
        current: every source now in the landing folder, by partition key, with a stamp that
            changes when the source does (size and modification time, or a digest of them).
    """
    seen = dict(
        line.split("\t", 1) for line in (context.cursor or "").splitlines() if "\t" in line
    )
    known = set(context.instance.get_dynamic_partitions(partitions.name))
    requests = [
        dg.RunRequest(partition_key=name, run_key=f"{name}@{stamp}")
        for name, stamp in current.items()
        if seen.get(name) != stamp
    ]
    new = sorted(set(current) - known)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[partitions.build_add_request(new)] if new else [],
        cursor="\n".join(f"{name}\t{stamp}" for name, stamp in sorted(current.items())),
    )
