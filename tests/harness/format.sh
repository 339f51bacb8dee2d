#!/usr/bin/env bash
# Formatting check of the C sources against .clang-format (clang-format --dry-run -Werror).
# Every tracked C file is checked except those listed in NOT_YET_FORMATTED: files that were being
# changed elsewhere when the check came in, left as they were to keep those changes mergeable.
# Reformat one (clang-format -i FILE), drop it from the list, commit both. New files are checked.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

NOT_YET_FORMATTED=(
    common/include/cv/db.h
    common/include/cv/event.h
    common/include/cv/kafka.h
    common/include/cv/service.h
    common/src/db.c
    common/src/event_check.c
    common/src/kafka_admin.c
    common/src/kafka_conf.c
    common/src/kafka_consumer.c
    common/src/kafka_producer.c
    common/src/kafka_security.c
    common/src/outbox_relay.c
    common/src/service_consumer.c
    common/src/service_openapi.c
    common/src/service_int.h
    services/inventory/events.c
    services/inventory/inventory.h
    services/inventory/stock.c
    services/order/events.c
    services/order/http_orders.c
    services/order/order.h
    services/order/saga_metrics.c
    services/order/store.c
    services/shipping/events.c
    services/shipping/http_shipments.c
    services/shipping/shipping.h
    services/shipping/store.c
    tests/integration/test_db.c
    tests/integration/test_outbox_kafka.c
    tests/services/inventory/test_inventory_states.c
    tests/services/order/test_order_states.c
    tests/services/shipping/test_shipping_states.c
    tests/services/statemachine.h
    tests/unit/test_event_check.c
    tests/unit/test_metrics.c
)

command -v clang-format >/dev/null || { echo "format: clang-format is not installed" >&2; exit 1; }
declare -A skip
for f in "${NOT_YET_FORMATTED[@]}"; do skip[$f]=1; done
status=0 checked=0
while IFS= read -r f; do
    [ -n "${skip[$f]:-}" ] && continue
    checked=$((checked + 1))
    clang-format --dry-run -Werror "$f" || status=1
done < <(git ls-files 'common/*.c' 'common/*.h' 'services/*.c' 'services/*.h' 'tests/*.c' \
    'tests/*.h')
echo "format: $checked files checked, ${#NOT_YET_FORMATTED[@]} not yet formatted"
exit "$status"
