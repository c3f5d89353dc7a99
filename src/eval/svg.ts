/** A tiny SVG plotting helper for the self-contained report page: line charts with shaded spans, and bar charts. */

export interface Line {
  name: string;
  xs: readonly number[];
  ys: readonly number[];
  color: string;
}

export interface Span {
  x0: number;
  x1: number;
  color: string;
  label: string;
}

export interface ChartOptions {
  width?: number;
  height?: number;
  title: string;
  xLabel?: (x: number) => string;
  yMin?: number;
  yMax?: number;
  spans?: Span[];
  /** Vertical marks, e.g. a crash or a drain. */
  marks?: { x: number; color: string; label: string }[];
  /** A horizontal line, e.g. the threshold. */
  hline?: { y: number; color: string; label: string };
}

const PAD = { l: 48, r: 12, t: 24, b: 28 };

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fmt(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(1) : x.toFixed(2);
}

export function lineChart(lines: readonly Line[], o: ChartOptions): string {
  const W = o.width ?? 900;
  const H = o.height ?? 220;
  const all = lines.flatMap((l) => l.xs);
  const xMin = all.length ? Math.min(...all) : 0;
  const xMax = all.length ? Math.max(...all) : 1;
  const ys = lines.flatMap((l) => l.ys);
  const yMin = o.yMin ?? (ys.length ? Math.min(...ys) : 0);
  const yMax = o.yMax ?? (ys.length ? Math.max(...ys) : 1);
  const sx = (x: number) => PAD.l + ((x - xMin) / (xMax - xMin || 1)) * (W - PAD.l - PAD.r);
  const sy = (y: number) => H - PAD.b - ((y - yMin) / (yMax - yMin || 1)) * (H - PAD.t - PAD.b);
  const parts: string[] = [];
  parts.push(`<text x="${PAD.l}" y="16" class="t">${escapeXml(o.title)}</text>`);
  for (const s of o.spans ?? []) {
    const x0 = sx(Math.max(xMin, s.x0));
    const x1 = sx(Math.min(xMax, s.x1));
    if (x1 < PAD.l || x0 > W - PAD.r) continue;
    parts.push(
      `<rect x="${x0.toFixed(1)}" y="${PAD.t}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${H - PAD.t - PAD.b}" fill="${s.color}"><title>${escapeXml(s.label)}</title></rect>`,
    );
  }
  for (const t of [yMin, (yMin + yMax) / 2, yMax]) {
    parts.push(`<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${sy(t)}" y2="${sy(t)}" class="g"/>`);
    parts.push(`<text x="${PAD.l - 4}" y="${sy(t) + 4}" class="a" text-anchor="end">${fmt(t)}</text>`);
  }
  const xl = o.xLabel ?? fmt;
  for (let i = 0; i <= 4; i++) {
    const x = xMin + ((xMax - xMin) * i) / 4;
    parts.push(`<text x="${sx(x)}" y="${H - 8}" class="a" text-anchor="middle">${escapeXml(xl(x))}</text>`);
  }
  if (o.hline) {
    const y = sy(o.hline.y);
    parts.push(
      `<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y}" y2="${y}" stroke="${o.hline.color}" stroke-dasharray="4 3"><title>${escapeXml(o.hline.label)}</title></line>`,
    );
  }
  for (const l of lines) {
    if (l.xs.length === 0) continue;
    let d = '';
    for (let i = 0; i < l.xs.length; i++) d += `${i ? 'L' : 'M'}${sx(l.xs[i]!).toFixed(1)} ${sy(l.ys[i]!).toFixed(1)}`;
    parts.push(
      `<path d="${d}" fill="none" stroke="${l.color}" stroke-width="1.3"><title>${escapeXml(l.name)}</title></path>`,
    );
    if (l.xs.length <= 40) {
      for (let i = 0; i < l.xs.length; i++)
        parts.push(
          `<circle cx="${sx(l.xs[i]!).toFixed(1)}" cy="${sy(l.ys[i]!).toFixed(1)}" r="2.5" fill="${l.color}"/>`,
        );
    }
  }
  for (const m of o.marks ?? []) {
    const x = sx(m.x);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${PAD.t}" y2="${H - PAD.b}" stroke="${m.color}" stroke-width="1.5"><title>${escapeXml(m.label)}</title></line>`,
    );
  }
  const legend = lines
    .map((l, i) => `<tspan fill="${l.color}" dx="${i ? 12 : 0}">■ ${escapeXml(l.name)}</tspan>`)
    .join('');
  parts.push(`<text x="${W - PAD.r}" y="16" class="a" text-anchor="end">${legend}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">${parts.join('')}</svg>`;
}

export function barChart(
  bars: readonly { label: string; value: number; color?: string }[],
  o: { title: string; width?: number; height?: number },
): string {
  const W = o.width ?? 600;
  const H = o.height ?? 200;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const bw = (W - PAD.l - PAD.r) / Math.max(1, bars.length);
  const parts = [`<text x="${PAD.l}" y="16" class="t">${escapeXml(o.title)}</text>`];
  bars.forEach((b, i) => {
    const h = (b.value / max) * (H - PAD.t - PAD.b);
    const x = PAD.l + i * bw;
    parts.push(
      `<rect x="${(x + 2).toFixed(1)}" y="${(H - PAD.b - h).toFixed(1)}" width="${Math.max(1, bw - 4).toFixed(1)}" height="${h.toFixed(1)}" fill="${b.color ?? '#4472c4'}"><title>${escapeXml(`${b.label}: ${b.value}`)}</title></rect>`,
    );
    parts.push(
      `<text x="${(x + bw / 2).toFixed(1)}" y="${H - 8}" class="a" text-anchor="middle">${escapeXml(b.label)}</text>`,
    );
    if (b.value > 0)
      parts.push(
        `<text x="${(x + bw / 2).toFixed(1)}" y="${(H - PAD.b - h - 3).toFixed(1)}" class="a" text-anchor="middle">${b.value}</text>`,
      );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">${parts.join('')}</svg>`;
}
