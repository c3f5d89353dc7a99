/**
 * A small RFC 4180 reader: comma-separated fields, optional double quotes, `""` for a quote inside quotes, and
 * quoted fields that span lines. Input comes line by line (readline strips CR LF / LF), so a record is complete when
 * its quotes are balanced. Lenient where the RFC is silent: a quote inside an unquoted field is kept as is, and text
 * after a closing quote is appended to the field.
 */

/** Parses one complete record (its lines joined with '\n'). */
export function parseRecord(text: string): string[] {
  const fields: string[] = [];
  let field = '';
  let i = 0;
  const n = text.length;
  let atFieldStart = true;
  let inQuotes = false;
  while (i < n) {
    const ch = text[i]!;
    if (inQuotes) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        inQuotes = false;
        i++;
        continue;
      }
      field += ch;
      i++;
      continue;
    }
    if (ch === ',') {
      fields.push(field);
      field = '';
      atFieldStart = true;
      i++;
      continue;
    }
    if (ch === '"' && atFieldStart) {
      inQuotes = true;
      atFieldStart = false;
      i++;
      continue;
    }
    field += ch;
    atFieldStart = false;
    i++;
  }
  fields.push(field);
  return fields;
}

/** True when `text` ends inside a quoted field, i.e. the record continues on the next line. */
export function endsInsideQuotes(text: string): boolean {
  let inQuotes = false;
  let atFieldStart = true;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inQuotes) {
      if (ch === '"') {
        if (text[i + 1] === '"') i++;
        else inQuotes = false;
      }
    } else if (ch === ',') atFieldStart = true;
    else {
      if (ch === '"' && atFieldStart) inQuotes = true;
      atFieldStart = false;
    }
  }
  return inQuotes;
}

/** Quotes a field when it needs it (comma, quote, CR or LF). */
export function formatField(field: string): string {
  return /[",\r\n]/.test(field) ? `"${field.replaceAll('"', '""')}"` : field;
}

export function formatRecord(fields: readonly string[]): string {
  return fields.map(formatField).join(',');
}

export interface CsvRecord {
  /** 1-based line number where the record starts. */
  line: number;
  /** The record's text as read (lines joined with '\n'), to be echoed unchanged. */
  text: string;
  fields: string[];
}

/**
 * Groups lines into records. Feed lines in order with `push`; it returns the completed record or null while a
 * quoted field is still open. `end()` returns an unterminated last record, if any (its quote never closed).
 */
export class RecordAssembler {
  private lineNo = 0;
  private startLine = 0;
  private pending: string | null = null;

  push(line: string): CsvRecord | null {
    this.lineNo++;
    if (this.pending === null) {
      this.startLine = this.lineNo;
      this.pending = line;
    } else {
      this.pending += `\n${line}`;
    }
    if (endsInsideQuotes(this.pending)) return null;
    const text = this.pending;
    this.pending = null;
    return { line: this.startLine, text, fields: parseRecord(text) };
  }

  end(): CsvRecord | null {
    if (this.pending === null) return null;
    const text = this.pending;
    this.pending = null;
    return { line: this.startLine, text, fields: parseRecord(text) };
  }
}
