/* cv-dlq: dead letters from a shell.
 *   cv-dlq redrive --dlq TOPIC [--consumer NAME] [--reason TEXT] [--source TOPIC]
 *                  [--since TIME] [--until TIME] [--dry-run]
 * Reads the dead-letter topic from its beginning to its current end and sends each dead
 * letter that matches back to the topic it came from (header dlq_topic), with its original
 * key, value and headers (minus the dlq_* ones) and a header redriven_from naming the dead
 * letter (<topic>/<partition>/<offset>). Consumers claim a redriven event once: one they
 * dead-lettered is applied now, one they applied before is skipped, so a redrive can be run
 * again safely. A dead letter whose value was cut to fit (dlq_value_truncated) is not sent:
 * its full value is still on the source topic, at dlq_partition/dlq_offset. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/kafka.h"
#include "cv/util.h"

struct filter {
    const char *consumer;
    const char *reason;
    const char *source;
    int64_t since_ms;
    int64_t until_ms;
    int dry_run;
};

static void usage(void)
{
    fputs("usage: cv-dlq redrive --dlq TOPIC [--brokers HOST:PORT] [--consumer NAME]\n"
          "                      [--reason TEXT] [--source TOPIC] [--since TIME] [--until TIME]\n"
          "                      [--dry-run]\n"
          "Sends the dead letters of TOPIC that match every filter given back to their source\n"
          "topic, tagged with a redriven_from header: --consumer (dlq_consumer equals NAME),\n"
          "--reason (dlq_reason contains TEXT), --source (dlq_topic equals TOPIC), --since and\n"
          "--until (dlq_time within [since, until), RFC 3339). --brokers defaults to\n"
          "$KAFKA_BOOTSTRAP_SERVERS, then 127.0.0.1:9092. --dry-run lists without sending.\n"
          "TLS and SASL as for the services, from the environment: KAFKA_SECURITY_PROTOCOL,\n"
          "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD or\n"
          "KAFKA_SASL_PASSWORD_FILE, KAFKA_SSL_CA_LOCATION, KAFKA_SSL_CERTIFICATE_LOCATION,\n"
          "KAFKA_SSL_KEY_LOCATION.\n",
          stderr);
}

/* A header's value as a NUL-terminated copy in buf ("" if absent). */
static const char *header_text(rd_kafka_headers_t *hdrs, const char *name, char *buf, size_t size)
{
    const void *v;
    size_t len;
    buf[0] = '\0';
    if (hdrs && rd_kafka_header_get_last(hdrs, name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v) {
        if (len >= size)
            len = size - 1;
        memcpy(buf, v, len);
        buf[len] = '\0';
    }
    return buf;
}

static int matches(const struct filter *f, rd_kafka_headers_t *hdrs)
{
    char buf[1024];
    if (!*header_text(hdrs, "dlq_topic", buf, sizeof(buf)))
        return 0; /* not a dead letter of ours */
    if (f->source && strcmp(buf, f->source) != 0)
        return 0;
    if (f->consumer &&
        strcmp(header_text(hdrs, "dlq_consumer", buf, sizeof(buf)), f->consumer) != 0)
        return 0;
    if (f->reason && !strstr(header_text(hdrs, "dlq_reason", buf, sizeof(buf)), f->reason))
        return 0;
    if (f->since_ms >= 0 || f->until_ms >= 0) {
        int64_t at;
        if (cv_parse_time(header_text(hdrs, "dlq_time", buf, sizeof(buf)), &at) < 0)
            return 0;
        if ((f->since_ms >= 0 && at < f->since_ms) || (f->until_ms >= 0 && at >= f->until_ms))
            return 0;
    }
    return 1;
}

/* Sends msg back to its source topic; fills dlv. 0, 1 if skipped (value cut), -1 on error. */
static int redrive_one(struct cv_kafka_producer *p, const rd_kafka_message_t *msg, const char *dlq,
                       const struct filter *f, struct cv_kafka_delivery *dlv)
{
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_message_headers(msg, &hdrs);
    char source[512], where[600], orig[64], cut[32];
    header_text(hdrs, "dlq_topic", source, sizeof(source));
    snprintf(where, sizeof(where), "%s/%d/%" PRId64, dlq, (int)msg->partition, msg->offset);
    if (*header_text(hdrs, "dlq_value_truncated", cut, sizeof(cut))) {
        char part[16], off[32];
        header_text(hdrs, "dlq_partition", part, sizeof(part));
        header_text(hdrs, "dlq_offset", off, sizeof(off));
        printf("skipped %s: its value was cut (%s bytes); the full record is %s/%s/%s\n", where,
               cut, source, part, off);
        return 1;
    }
    header_text(hdrs, "dlq_offset", orig, sizeof(orig));
    if (f->dry_run) {
        printf("would redrive %s to %s (was offset %s)\n", where, source, orig);
        return 0;
    }
    size_t n = hdrs ? rd_kafka_header_cnt(hdrs) : 0;
    struct cv_kafka_header *out = calloc(n + 2, sizeof(*out));
    if (!out) {
        fprintf(stderr, "cv-dlq: %s: out of memory\n", where);
        return -1;
    }
    size_t k = 0;
    const char *name;
    const void *value;
    size_t len;
    for (size_t i = 0; i < n && rd_kafka_header_get_all(hdrs, i, &name, &value, &len) == 0; i++)
        if (strncmp(name, "dlq_", 4) != 0 && strcmp(name, "redriven_from") != 0)
            out[k++] = (struct cv_kafka_header){name, value, len};
    char now[25];
    cv_format_time(cv_now_ms(), now);
    out[k++] = (struct cv_kafka_header){"redriven_from", where, strlen(where)};
    out[k++] = (struct cv_kafka_header){"redriven_at", now, strlen(now)};
    char errstr[256];
    int rc = cv_kafka_produce(p, source, msg->key, msg->key_len, msg->payload, msg->len, out, k,
                              dlv, errstr, sizeof(errstr));
    free(out);
    if (rc < 0) {
        fprintf(stderr, "cv-dlq: %s: %s\n", where, errstr);
        return -1;
    }
    printf("redriven %s to %s\n", where, source);
    return 0;
}

/* Reads dlq from its beginning to its end now, redriving what matches; both clients get the
 * TLS and SASL properties sec. Exit status. */
static int redrive(const char *brokers, const char *dlq, const struct filter *f,
                   const struct cv_kafka_security *sec)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (const char *const *kv = sec->props; kv[0]; kv += 2) {
        if (rd_kafka_conf_set(conf, kv[0], kv[1], errstr, sizeof(errstr))) {
            fprintf(stderr, "cv-dlq: %s: %s\n", kv[0], errstr); /* never the value */
            rd_kafka_conf_destroy(conf);
            return 2;
        }
    }
    char group[64];
    snprintf(group, sizeof(group), "cv-dlq-%lld", (long long)cv_now_ms());
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr))) {
        fprintf(stderr, "cv-dlq: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "cv-dlq: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    struct cv_kafka_producer *p = NULL;
    struct cv_kafka_delivery *dlv = NULL;
    size_t cap = 0, sent = 0, matched = 0, skipped = 0, read = 0;
    int status = 1, eof = 0, partitions = 0;
    rd_kafka_topic_partition_list_t *parts = NULL;

    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, dlq, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "cv-dlq: topic %s: %s\n", dlq,
                rd_kafka_err2str(err             ? err
                                 : md->topic_cnt ? md->topics[0].err
                                                 : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        goto cleanup;
    }
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int64_t lo, hi;
        int32_t id = md->topics[0].partitions[i].id;
        if (rd_kafka_query_watermark_offsets(rk, dlq, id, &lo, &hi, 10000)) {
            fprintf(stderr, "cv-dlq: cannot read the offsets of %s[%d]\n", dlq, (int)id);
            goto cleanup;
        }
        if (hi > lo) { /* empty partitions are done already */
            rd_kafka_topic_partition_list_add(parts, dlq, id)->offset = RD_KAFKA_OFFSET_BEGINNING;
            partitions++;
        }
    }
    if (partitions && rd_kafka_assign(rk, parts)) {
        fprintf(stderr, "cv-dlq: cannot read %s\n", dlq);
        goto cleanup;
    }
    if (!f->dry_run) {
        p = cv_kafka_producer_new(brokers, "cv-dlq", sec->props, errstr, sizeof(errstr));
        if (!p) {
            fprintf(stderr, "cv-dlq: %s\n", errstr);
            goto cleanup;
        }
    }
    /* enable.partition.eof: each partition reports reaching its end (what was there at start
     * is at most that much). */
    int idle = 0;
    while (eof < partitions && idle < 30) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 1000);
        if (!msg) {
            idle++;
            continue;
        }
        idle = 0;
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof++;
        } else if (msg->err) {
            fprintf(stderr, "cv-dlq: %s\n", rd_kafka_message_errstr(msg));
        } else {
            read++;
            rd_kafka_headers_t *hdrs = NULL;
            rd_kafka_message_headers(msg, &hdrs);
            if (matches(f, hdrs)) {
                matched++;
                if (sent == cap) {
                    cap = cap ? cap * 2 : 64;
                    /* Slots must not move while deliveries are pending: wait for them first. */
                    if (p && sent && cv_kafka_wait(p, dlv, sent, 60000, NULL) > 0) {
                        fprintf(stderr, "cv-dlq: not acknowledged within 60 s\n");
                        rd_kafka_message_destroy(msg);
                        goto cleanup;
                    }
                    struct cv_kafka_delivery *bigger = realloc(dlv, cap * sizeof(*dlv));
                    if (!bigger) {
                        fprintf(stderr, "cv-dlq: out of memory\n");
                        rd_kafka_message_destroy(msg);
                        goto cleanup;
                    }
                    dlv = bigger;
                }
                int rc = redrive_one(p, msg, dlq, f, &dlv[sent]);
                if (rc < 0) {
                    rd_kafka_message_destroy(msg);
                    goto cleanup;
                }
                if (rc == 1)
                    skipped++;
                else if (!f->dry_run)
                    sent++;
            }
        }
        rd_kafka_message_destroy(msg);
    }
    if (eof < partitions) {
        fprintf(stderr, "cv-dlq: %s: stopped before its end (no records for 30 s)\n", dlq);
        goto cleanup;
    }
    if (p && cv_kafka_wait(p, dlv, sent, 60000, NULL) > 0) {
        fprintf(stderr, "cv-dlq: not every record was acknowledged within 60 s\n");
        goto cleanup;
    }
    for (size_t i = 0; i < sent; i++)
        if (dlv[i].err) {
            fprintf(stderr, "cv-dlq: delivery failed: %s\n", rd_kafka_err2str(dlv[i].err));
            goto cleanup;
        }
    printf("%s: %zu dead letters read, %zu matched, %zu %s, %zu skipped (value cut)\n", dlq, read,
           matched, f->dry_run ? matched - skipped : sent,
           f->dry_run ? "would be redriven" : "redriven", skipped);
    status = 0;
cleanup:
    cv_kafka_producer_destroy(p, 10000);
    free(dlv);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return status;
}

/* The TLS and SASL settings, from the environment as for the services (see their --help). */
static const char *env_setting(const char *name, void *arg)
{
    return getenv(name);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "redrive") != 0) {
        usage();
        return 2;
    }
    struct filter f = {.since_ms = -1, .until_ms = -1};
    const char *brokers = getenv("KAFKA_BOOTSTRAP_SERVERS");
    const char *dlq = NULL;
    if (!brokers || !*brokers)
        brokers = "127.0.0.1:9092";
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--dry-run") == 0) {
            f.dry_run = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cv-dlq: %s needs a value\n", opt);
            usage();
            return 2;
        }
        const char *val = argv[++i];
        if (strcmp(opt, "--dlq") == 0)
            dlq = val;
        else if (strcmp(opt, "--brokers") == 0)
            brokers = val;
        else if (strcmp(opt, "--consumer") == 0)
            f.consumer = val;
        else if (strcmp(opt, "--reason") == 0)
            f.reason = val;
        else if (strcmp(opt, "--source") == 0)
            f.source = val;
        else if (strcmp(opt, "--since") == 0 || strcmp(opt, "--until") == 0) {
            int64_t *ms = opt[2] == 's' ? &f.since_ms : &f.until_ms;
            if (cv_parse_time(val, ms) < 0) {
                fprintf(stderr, "cv-dlq: %s: expected an RFC 3339 time, got \"%s\"\n", opt, val);
                return 2;
            }
        } else {
            fprintf(stderr, "cv-dlq: unknown option %s\n", opt);
            usage();
            return 2;
        }
    }
    if (!dlq) {
        fprintf(stderr, "cv-dlq: --dlq TOPIC is required\n");
        usage();
        return 2;
    }
    struct cv_kafka_security sec;
    char errstr[512];
    if (cv_kafka_security_init(&sec, env_setting, NULL, errstr, sizeof(errstr)) < 0) {
        fprintf(stderr, "cv-dlq: %s\n", errstr);
        return 2;
    }
    int status = redrive(brokers, dlq, &f, &sec);
    cv_kafka_security_free(&sec);
    return status;
}
