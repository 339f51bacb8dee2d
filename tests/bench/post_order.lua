-- wrk script: POST /orders with one item of the benchmark SKU.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"customer_id":"wrk","items":[{"sku":"BENCH-1","quantity":1,"unit_price_cents":100}]}'
