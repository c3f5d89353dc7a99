import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifySchema, FastifySchemaCompiler } from 'fastify';

/**
 * Validates without type coercion, for mutation routes: fastify's default validator coerces `{"reason": 5}` into
 * `"5"` and `{"force": "true"}` into `true`, which is fine for query strings but too lenient for a change request.
 */
export const strictValidator: FastifySchemaCompiler<FastifySchema> = ({ schema }) => {
  const check = TypeCompiler.Compile(schema as TSchema);
  return (value: unknown) => {
    if (check.Check(value)) return { value };
    const first = check.Errors(value).First();
    const where = first?.path ? first.path.slice(1).replaceAll('/', '.') : 'value';
    const error = Object.assign(new Error(`${where}: ${first?.message ?? 'invalid'}`), { statusCode: 400 });
    return { error };
  };
};
