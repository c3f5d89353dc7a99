const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

function bump(hour: number, centre: number, width: number): number {
  const d = (hour - centre) / width;
  return Math.exp(-0.5 * d * d);
}

/**
 * Relative call load in (0, 1] at a time of day: a contact-centre shape with a morning and an afternoon busy hour,
 * a smaller evening shoulder, a night floor, and lighter weekends. 1 = the weekday busy hour.
 */
export function dailyLoad(ts: number, nightLoad: number, weekendLoad: number, utcOffsetHours: number): number {
  const local = ts + utcOffsetHours * HOUR_MS;
  const hour = (((local % DAY_MS) + DAY_MS) % DAY_MS) / HOUR_MS;
  const shape = Math.min(1, bump(hour, 10.5, 1.7) + bump(hour, 15, 1.9) + 0.35 * bump(hour, 19.5, 1.4));
  const load = nightLoad + (1 - nightLoad) * shape;
  // 1970-01-01 was a Thursday: day 0 -> 4 (0 = Sunday).
  const weekday = (((Math.floor(local / DAY_MS) + 4) % 7) + 7) % 7;
  const isWeekend = weekday === 0 || weekday === 6;
  return isWeekend ? load * weekendLoad : load;
}
