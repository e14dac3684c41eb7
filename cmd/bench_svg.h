/* SPDX-License-Identifier: MIT */
/* aegis-bench pictures: one self-contained SVG file (no scripts, fonts, styles or links to
 * fetch), written with fprintf, so that a run can be looked at in any browser without a
 * plotting tool.
 *
 * Two kinds of panel:
 *  - the latency percentile spectrum, HdrHistogram style: x is the percentile on a log
 *    scale of 1/(1 - p) (ticks at 0, 90, 99, 99.9 ... %), y the latency in ms; one line
 *    per run (a run's own plot, or every file of `compare --plot`);
 *  - the run over time: ops per second (left axis, blue) and p99 in ms (right axis, red)
 *    for every second measured, with a dashed vertical marker and a label for each event
 *    seen during the run (leader change, snapshot).
 * The spectrum's points come from a histogram's buckets (value, count) as HdrHistogram's
 * percentile distribution walks them: 5 ticks per halving of the distance to 100%.
 * Header-only because every cmd/ source file becomes its own program; tests parse its
 * output with an XML parser. */
#ifndef AEGIS_BENCH_SVG_H
#define AEGIS_BENCH_SVG_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SVG_SPECTRUM_MAX 512 /* Points of one spectrum line. */
#define SVG_X_MAX        6.0 /* 99.9999%: the spectrum's right end at most. */

/* One spectrum line: @n points of (percentile 0..100, latency ms). */
struct svg_curve {
    const char *name;
    double pct[SVG_SPECTRUM_MAX];
    double ms[SVG_SPECTRUM_MAX];
    size_t n;
};

struct svg_event {
    double t_s;
    char label[48];
};

struct svg_timeline {
    const double *t_s, *ops, *p99_ms;
    size_t n;
    const struct svg_event *events;
    size_t events_count;
};

static const char *const svg_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                         "#9467bd", "#8c564b", "#e377c2", "#17becf"};

/* Fill @c from buckets sorted by value: bucket i holds @count[i] samples whose largest
 * value is @hi_ms[i]; @max_ms caps the values. */
static inline void svg_curve_from_buckets(struct svg_curve *c, const double *hi_ms,
                                          const uint64_t *count, size_t n, double max_ms)
{
    uint64_t total = 0, seen = 0;
    double level = 0.0;
    size_t b = 0;

    c->n = 0;
    for (size_t i = 0; i < n; i++) {
        total += count[i];
    }
    /* Bounded: at most SVG_SPECTRUM_MAX points, and the walk stops at the last sample. */
    while (total > 0 && c->n < SVG_SPECTRUM_MAX && level < 100.0) {
        double rank = ceil(level / 100.0 * (double)total), ticks;

        rank = rank < 1 ? 1 : rank;
        while (b < n && (double)(seen + count[b]) < rank) {
            seen += count[b++];
        }
        if (b >= n) {
            break;
        }
        c->pct[c->n] = level;
        c->ms[c->n++] = hi_ms[b] < max_ms ? hi_ms[b] : max_ms;
        if (seen + count[b] >= total || log10(100.0 / (100.0 - level)) >= SVG_X_MAX) {
            break;
        }
        ticks = 5.0 * pow(2.0, floor(log2(100.0 / (100.0 - level))) + 1.0);
        level += 100.0 / ticks;
    }
}

static inline double svg_nice_ceil(double v)
{
    double p, m;

    if (!(v > 0)) {
        return 1.0;
    }
    p = pow(10.0, floor(log10(v)));
    m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static inline void svg_text_escaped(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f) {
                fputc(*s, f);
            }
        }
    }
}

static inline void svg_begin(FILE *f, int w, int h, const char *title)
{
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n"
               "<title>",
            w, h, w, h);
    svg_text_escaped(f, title);
    fprintf(f, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", w, h);
}

static inline void svg_end(FILE *f)
{
    fputs("</svg>\n", f);
}

static inline void svg_label(FILE *f, double x, double y, const char *anchor, const char *s)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", x, y, anchor);
    svg_text_escaped(f, s);
    fputs("</text>\n", f);
}

static inline void svg_frame(FILE *f, double x, double y, double w, double h, const char *title)
{
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#888\"/>\n",
            x, y, w, h);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">", x + w / 2,
            y - 8);
    svg_text_escaped(f, title);
    fputs("</text>\n", f);
}

/* Horizontal grid lines and labels of a linear axis from 0 to @top at the left or right. */
static inline void svg_y_axis(FILE *f, double x, double y, double w, double h, double top,
                              bool right, const char *unit)
{
    char buf[48];

    for (int i = 0; i <= 5; i++) {
        double yy = y + h - h * i / 5.0, v = top * i / 5.0;

        if (!right) {
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                    x, yy, x + w, yy);
        }
        snprintf(buf, sizeof(buf), "%g", v);
        svg_label(f, right ? x + w + 4 : x - 4, yy + 4, right ? "start" : "end", buf);
    }
    svg_label(f, right ? x + w + 4 : x - 4, y - 2, right ? "start" : "end", unit);
}

/* The spectrum panel at (@x, @y) of size @w x @h with @n curves. */
static inline void svg_spectrum(FILE *f, double x, double y, double w, double h,
                                const struct svg_curve *curves, size_t n)
{
    static const char *const ticks[] = {"0%", "90%", "99%", "99.9%", "99.99%", "99.999%",
                                        "99.9999%"};
    double xmax = 1.0, ymax = 0.0;

    for (size_t c = 0; c < n; c++) {
        for (size_t i = 0; i < curves[c].n; i++) {
            double xv = log10(100.0 / (100.0 - curves[c].pct[i]));

            xmax = xv > xmax ? xv : xmax;
            ymax = curves[c].ms[i] > ymax ? curves[c].ms[i] : ymax;
        }
    }
    xmax = ceil(xmax) < SVG_X_MAX ? ceil(xmax) : SVG_X_MAX;
    ymax = svg_nice_ceil(ymax);
    svg_frame(f, x, y, w, h, "latency by percentile");
    svg_y_axis(f, x, y, w, h, ymax, false, "ms");
    for (int t = 0; t <= (int)xmax; t++) {
        double xx = x + w * t / xmax;

        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                xx, y, xx, y + h);
        svg_label(f, xx, y + h + 14, "middle", ticks[t]);
    }
    for (size_t c = 0; c < n; c++) {
        const char *color = svg_colors[c % (sizeof(svg_colors) / sizeof(svg_colors[0]))];

        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
        for (size_t i = 0; i < curves[c].n; i++) {
            double xv = log10(100.0 / (100.0 - curves[c].pct[i]));

            xv = xv > xmax ? xmax : xv;
            fprintf(f, "%s%.1f,%.1f", i ? " " : "", x + w * xv / xmax,
                    y + h - h * curves[c].ms[i] / ymax);
        }
        fputs("\"/>\n", f);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"3\" fill=\"%s\"/>\n",
                x + 10, y + 12 + 14.0 * (double)c, color);
        svg_label(f, x + 24, y + 16 + 14.0 * (double)c, "start", curves[c].name);
    }
}

static inline void svg_series_line(FILE *f, double x, double y, double w, double h,
                                   const double *t, const double *v, size_t n, double tmax,
                                   double vmax, const char *color)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s%.1f,%.1f", i ? " " : "", x + w * t[i] / tmax, y + h - h * v[i] / vmax);
    }
    fputs("\"/>\n", f);
}

/* The over-time panel: throughput and p99 per second, with event markers. */
static inline void svg_timeline(FILE *f, double x, double y, double w, double h,
                                const struct svg_timeline *tl)
{
    double tmax = 1.0, omax = 0.0, pmax = 0.0;
    char buf[48];

    for (size_t i = 0; i < tl->n; i++) {
        tmax = tl->t_s[i] > tmax ? tl->t_s[i] : tmax;
        omax = tl->ops[i] > omax ? tl->ops[i] : omax;
        pmax = tl->p99_ms[i] > pmax ? tl->p99_ms[i] : pmax;
    }
    tmax = svg_nice_ceil(tmax);
    omax = svg_nice_ceil(omax);
    pmax = svg_nice_ceil(pmax);
    svg_frame(f, x, y, w, h, "throughput (blue, ops/s) and p99 (red, ms) per second");
    svg_y_axis(f, x, y, w, h, omax, false, "ops/s");
    svg_y_axis(f, x, y, w, h, pmax, true, "p99 ms");
    for (int i = 0; i <= 5; i++) {
        snprintf(buf, sizeof(buf), "%gs", tmax * i / 5.0);
        svg_label(f, x + w * i / 5.0, y + h + 14, "middle", buf);
    }
    for (size_t i = 0; i < tl->events_count; i++) {
        double xx = x + w * tl->events[i].t_s / tmax;

        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" "
                   "stroke-dasharray=\"4,3\"/>\n",
                xx, y, xx, y + h);
        svg_label(f, xx + 3, y + 12 + 12.0 * (double)(i % 4), "start", tl->events[i].label);
    }
    svg_series_line(f, x, y, w, h, tl->t_s, tl->ops, tl->n, tmax, omax, "#1f77b4");
    svg_series_line(f, x, y, w, h, tl->t_s, tl->p99_ms, tl->n, tmax, pmax, "#d62728");
}

#endif /* AEGIS_BENCH_SVG_H */
