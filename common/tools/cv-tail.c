/* cv-tail: reads Kafka topics directly and prints every record as one JSON line: where it is,
 * its key, its headers and its value decoded from Avro, in either framing (single-object, or
 * Confluent with the schema fetched from a registry). From the beginning, the end, an offset or
 * a time; stops at the end of the topics, or follows them like `tail -f`. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "cv/avro.h"
#include "cv/avro_registry.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(FILE *out)
{
    /* clang-format off */
    fputs("usage: cv-tail [options] TOPIC...\n"
          "Prints each record of the topics as one JSON object per line: topic, partition,\n"
          "offset, timestamp, key, headers, framing, schema (and schema_id), value (decoded\n"
          "Avro as written), or error and value_hex when the value cannot be decoded.\n"
          "  -b, --brokers HOST:PORT    Kafka brokers [$KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092]\n"
          "  -o, --offset WHERE         beginning (default), end, N (offset N of every\n"
          "                             partition) or -N (the last N of every partition)\n"
          "  -s, --since TIME           from the first record at or after TIME: milliseconds\n"
          "                             since the epoch or YYYY-MM-DDTHH:MM:SS[Z] (UTC)\n"
          "  -f, --follow               keep waiting for new records (until Ctrl-C)\n"
          "  -n, --count N              stop after N records\n"
          "  -r, --registry URL         schema registry for Confluent-framed values\n"
          "                             [$SCHEMA_REGISTRY_URL]; basic auth from\n"
          "                             $SCHEMA_REGISTRY_USER and $SCHEMA_REGISTRY_PASSWORD,\n"
          "                             CA file from $SCHEMA_REGISTRY_CA_FILE\n"
          "Exit status: 0 when done, 1 on a Kafka or registry error, 2 on bad usage.\n",
          out);
    /* clang-format on */
}

/* Milliseconds since the epoch from digits or an ISO-8601 UTC time; -1 if neither. */
static int64_t parse_time(const char *s)
{
    char *end;
    errno = 0;
    long long ms = strtoll(s, &end, 10);
    if (errno == 0 && *end == '\0' && end != s && ms >= 0)
        return ms;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || (*end != '\0' && strcmp(end, "Z") != 0))
        return -1;
    return (int64_t)timegm(&tm) * 1000;
}

static json_t *text_or_null(const void *p, size_t len)
{
    return p ? json_stringn(p, len) : json_null();
}

static char *hex(const unsigned char *p, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *out = malloc(len * 2 + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[len * 2] = '\0';
    return out;
}

/* Decodes value as its writer wrote it into rec's framing, schema and value (or error). */
static void decode_value(struct cv_avro_registry *reg, const unsigned char *value, size_t len,
                         json_t *rec)
{
    char errstr[512];
    int transient;
    if (!value || len == 0) {
        json_object_set_new(rec, "value", json_null());
        return;
    }
    int confluent = value[0] == 0;
    json_object_set_new(rec, "framing", json_string(confluent ? "confluent" : "single-object"));
    if (confluent && len >= CV_AVRO_CONFLUENT_HEADER)
        json_object_set_new(
            rec, "schema_id",
            json_integer((json_int_t)((uint32_t)value[1] << 24 | (uint32_t)value[2] << 16 |
                                      (uint32_t)value[3] << 8 | value[4])));
    json_t *out = NULL;
    const struct cv_schema *writer = NULL;
    int rc =
        reg ? cv_avro_registry_prepare(reg, value, len, &transient, errstr, sizeof(errstr)) : 0;
    if (rc == 0)
        rc = cv_avro_decode(value, len, NULL, &out, &writer, errstr, sizeof(errstr));
    /* Show the fields as written, not as the current version would read them. */
    if (rc == 0 && writer != cv_avro_schema_by_type(cv_avro_schema_full_name(writer))) {
        size_t header = confluent ? CV_AVRO_CONFLUENT_HEADER : CV_AVRO_SINGLE_OBJECT_HEADER;
        json_decref(out);
        out = NULL;
        rc = cv_avro_decode_body(writer, value + header, len - header, writer, &out, errstr,
                                 sizeof(errstr));
    }
    if (rc != 0) {
        char *h = hex(value, len);
        json_object_set_new(rec, "error", json_string(errstr));
        json_object_set_new(rec, "value_hex", h ? json_string(h) : json_null());
        free(h);
        return;
    }
    json_object_set_new(rec, "schema", json_string(cv_avro_schema_full_name(writer)));
    json_object_set_new(rec, "value", out);
}

static void print_record(struct cv_avro_registry *reg, const rd_kafka_message_t *msg)
{
    json_t *rec = json_object();
    json_object_set_new(rec, "topic", json_string(rd_kafka_topic_name(msg->rkt)));
    json_object_set_new(rec, "partition", json_integer(msg->partition));
    json_object_set_new(rec, "offset", json_integer(msg->offset));
    json_object_set_new(rec, "timestamp", json_integer(rd_kafka_message_timestamp(msg, NULL)));
    json_t *key = text_or_null(msg->key, msg->key_len);
    if (!key) { /* not UTF-8 */
        char *h = hex(msg->key, msg->key_len);
        json_object_set_new(rec, "key_hex", h ? json_string(h) : json_null());
        free(h);
        key = json_null();
    }
    json_object_set_new(rec, "key", key);
    json_t *headers = json_object();
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t vlen;
        for (size_t i = 0;
             rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen) == RD_KAFKA_RESP_ERR_NO_ERROR;
             i++) {
            json_t *v = text_or_null(val, vlen);
            if (!v) {
                char *h = hex(val, vlen);
                v = json_pack("{s:s?}", "hex", h);
                free(h);
            }
            json_object_set_new(headers, name, v);
        }
    }
    json_object_set_new(rec, "headers", headers);
    decode_value(reg, msg->payload, msg->len, rec);
    char *line = json_dumps(rec, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (line) {
        fputs(line, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(line);
    json_decref(rec);
}

enum start_kind { FROM_BEGINNING, FROM_END, FROM_OFFSET, FROM_LAST, FROM_TIME };

/* Every partition of topics, with its starting offset. NULL with errstr on error. */
static rd_kafka_topic_partition_list_t *plan(rd_kafka_t *rk, char **topics, int ntopics,
                                             enum start_kind kind, int64_t arg, char *errstr,
                                             size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
    for (int t = 0; t < ntopics; t++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topics[t], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err)
            err = md->topics[0].err;
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(errstr, errstr_size, "topic %s: %s", topics[t], rd_kafka_err2str(err));
            if (md)
                rd_kafka_metadata_destroy(md);
            rd_kafka_topic_partition_list_destroy(parts);
            return NULL;
        }
        for (int p = 0; p < md->topics[0].partition_cnt; p++) {
            int32_t id = md->topics[0].partitions[p].id;
            rd_kafka_topic_partition_t *tp =
                rd_kafka_topic_partition_list_add(parts, topics[t], id);
            int64_t lo = 0, hi = 0;
            switch (kind) {
            case FROM_BEGINNING:
                tp->offset = RD_KAFKA_OFFSET_BEGINNING;
                break;
            case FROM_END:
                tp->offset = RD_KAFKA_OFFSET_END;
                break;
            case FROM_OFFSET:
                tp->offset = arg;
                break;
            case FROM_LAST:
                err = rd_kafka_query_watermark_offsets(rk, topics[t], id, &lo, &hi, 10000);
                if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    snprintf(errstr, errstr_size, "%s[%d]: %s", topics[t], id,
                             rd_kafka_err2str(err));
                    rd_kafka_metadata_destroy(md);
                    rd_kafka_topic_partition_list_destroy(parts);
                    return NULL;
                }
                tp->offset = hi - arg > lo ? hi - arg : lo;
                break;
            case FROM_TIME:
                tp->offset = arg; /* resolved below */
                break;
            }
        }
        rd_kafka_metadata_destroy(md);
    }
    if (kind == FROM_TIME) {
        rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, parts, 10000);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(errstr, errstr_size, "offsets for time: %s", rd_kafka_err2str(err));
            rd_kafka_topic_partition_list_destroy(parts);
            return NULL;
        }
        /* No record at or after the time: -1, i.e. the end. */
        for (int i = 0; i < parts->cnt; i++)
            if (parts->elems[i].offset < 0)
                parts->elems[i].offset = RD_KAFKA_OFFSET_END;
    }
    return parts;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"brokers", required_argument, NULL, 'b'}, {"offset", required_argument, NULL, 'o'},
        {"since", required_argument, NULL, 's'},   {"follow", no_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'n'},   {"registry", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *brokers = getenv("KAFKA_BOOTSTRAP_SERVERS");
    const char *registry_url = getenv("SCHEMA_REGISTRY_URL");
    enum start_kind kind = FROM_BEGINNING;
    int64_t arg = 0;
    int follow = 0;
    long long count = -1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "b:o:s:fn:r:h", options, NULL)) != -1) {
        switch (c) {
        case 'b':
            brokers = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "beginning") == 0) {
                kind = FROM_BEGINNING;
            } else if (strcmp(optarg, "end") == 0) {
                kind = FROM_END;
            } else {
                errno = 0;
                long long v = strtoll(optarg, &end, 10);
                if (errno || *end || end == optarg) {
                    fprintf(stderr,
                            "cv-tail: --offset: expected beginning, end, N or -N, "
                            "got \"%s\"\n",
                            optarg);
                    return 2;
                }
                kind = v < 0 ? FROM_LAST : FROM_OFFSET;
                arg = v < 0 ? -v : v;
            }
            break;
        case 's':
            arg = parse_time(optarg);
            if (arg < 0) {
                fprintf(stderr,
                        "cv-tail: --since: expected milliseconds since the epoch or "
                        "YYYY-MM-DDTHH:MM:SS[Z], got \"%s\"\n",
                        optarg);
                return 2;
            }
            kind = FROM_TIME;
            break;
        case 'f':
            follow = 1;
            break;
        case 'n':
            errno = 0;
            count = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || count < 1) {
                fprintf(stderr, "cv-tail: --count: expected a positive integer, got \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case 'r':
            registry_url = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    if (!brokers || !*brokers)
        brokers = "127.0.0.1:9092";

    char errstr[512];
    if (cv_avro_catalog_load(errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "cv-tail: schemas: %s\n", errstr);
        return 1;
    }
    struct cv_avro_registry *reg = NULL;
    if (registry_url && *registry_url) {
        struct cv_avro_registry_conf rc = {
            .url = registry_url,
            .user = getenv("SCHEMA_REGISTRY_USER"),
            .password = getenv("SCHEMA_REGISTRY_PASSWORD"),
            .ca_file = getenv("SCHEMA_REGISTRY_CA_FILE"),
            .timeout_ms = 10000,
        };
        reg = cv_avro_registry_new(&rc, errstr, sizeof(errstr));
        if (!reg) {
            fprintf(stderr, "cv-tail: %s\n", errstr);
            cv_avro_catalog_free();
            return 2;
        }
    }

    int status = 1;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* No group: partitions are assigned by hand and nothing is committed. */
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "group.id", "cv-tail", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "client.id", "cv-tail", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr))) {
        fprintf(stderr, "cv-tail: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        goto cleanup;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "cv-tail: %s\n", errstr);
        goto cleanup;
    }
    rd_kafka_poll_set_consumer(rk);
    parts = plan(rk, argv + optind, argc - optind, kind, arg, errstr, sizeof(errstr));
    if (!parts) {
        fprintf(stderr, "cv-tail: %s\n", errstr);
        goto cleanup;
    }
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts);
    if (err) {
        fprintf(stderr, "cv-tail: assign: %s\n", rd_kafka_err2str(err));
        goto cleanup;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    int at_end = 0; /* partitions that reported their end since their last record */
    char *eof = calloc((size_t)parts->cnt, 1);
    if (!eof) {
        fprintf(stderr, "cv-tail: out of memory\n");
        goto cleanup;
    }
    status = 0;
    while (!stop && count != 0 && (follow || at_end < parts->cnt)) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 500);
        if (!msg)
            continue;
        int idx = -1;
        for (int i = 0; msg->rkt && i < parts->cnt; i++)
            if (parts->elems[i].partition == msg->partition &&
                strcmp(parts->elems[i].topic, rd_kafka_topic_name(msg->rkt)) == 0)
                idx = i;
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (idx >= 0 && !eof[idx]) {
                eof[idx] = 1;
                at_end++;
            }
        } else if (msg->err) {
            fprintf(stderr, "cv-tail: %s\n", rd_kafka_message_errstr(msg));
            if (msg->err != RD_KAFKA_RESP_ERR__TRANSPORT &&
                msg->err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
                status = 1;
                rd_kafka_message_destroy(msg);
                break;
            }
        } else {
            if (idx >= 0 && eof[idx]) {
                eof[idx] = 0;
                at_end--;
            }
            print_record(reg, msg);
            if (count > 0)
                count--;
        }
        rd_kafka_message_destroy(msg);
    }
    free(eof);
cleanup:
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    cv_avro_registry_destroy(reg);
    cv_avro_catalog_free();
    return status;
}
