// /reports: the three charts, drawn with the vendored Chart.js (static/vendor/chartjs) from
// the figures the server put in <script id="report-data">. Each canvas has its title as its
// accessible name and the same figures as a table under "Show as a table".
"use strict";
import { _, language } from "./i18n.js";

const rtl = document.documentElement.dir === "rtl";
const css = getComputedStyle(document.documentElement);
const colour = (name, fallback) => css.getPropertyValue(name).trim() || fallback;

function draw() {
  const Chart = window.Chart;
  const source = document.getElementById("report-data");
  if (!Chart || !source) return;
  const data = JSON.parse(source.textContent || "{}");
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = colour("--muted", "#5a6478");
  Chart.defaults.animation = false; // figures, not a show; also steady screenshots
  Chart.defaults.maintainAspectRatio = false;
  const locale = language === "ar" ? "ar-u-nu-latn" : language;
  const common = {
    locale,
    plugins: {
      legend: { rtl, position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } },
      tooltip: { rtl },
    },
  };
  const ok = colour("--ok", "#13753b");
  const bad = colour("--pause", "#b42318");
  const primary = colour("--primary", "#2f54eb");

  new Chart(document.getElementById("chart-hours"), {
    type: "bar",
    data: {
      labels: data.perHour.labels,
      datasets: [
        { label: _("Answered"), data: data.perHour.answered, backgroundColor: ok, stack: "calls" },
        { label: _("Abandoned"), data: data.perHour.abandoned, backgroundColor: bad, stack: "calls" },
      ],
    },
    options: {
      ...common,
      scales: {
        x: { reverse: rtl, stacked: true, grid: { display: false } },
        y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
      },
    },
  });

  new Chart(document.getElementById("chart-sl"), {
    type: "line",
    data: {
      labels: data.serviceLevel.labels,
      datasets: [
        {
          label: _("Service level (%)"),
          data: data.serviceLevel.values,
          borderColor: primary,
          backgroundColor: primary,
          pointRadius: 3,
          spanGaps: true,
          tension: 0.2,
        },
      ],
    },
    options: {
      ...common,
      scales: {
        x: { reverse: rtl, grid: { display: false } },
        y: { min: 0, max: 100, ticks: { callback: (v) => v + (language === "fr" ? "\u202f%" : "%") } },
      },
    },
  });

  new Chart(document.getElementById("chart-ratings"), {
    type: "bar",
    data: {
      labels: data.ratings.labels,
      datasets: [
        {
          label: _("Ratings"),
          data: data.ratings.values,
          // From red (0) to green (10): the colour repeats the rating on the axis.
          backgroundColor: data.ratings.labels.map((r) => `hsl(${Number(r) * 12} 60% 42%)`),
        },
      ],
    },
    options: {
      ...common,
      plugins: { ...common.plugins, legend: { display: false } },
      scales: {
        x: { reverse: rtl, grid: { display: false }, title: { display: true, text: _("Rating") } },
        y: { beginAtZero: true, ticks: { precision: 0 } },
      },
    },
  });
  document.body.dataset.charts = "drawn";
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", draw);
} else {
  draw();
}
