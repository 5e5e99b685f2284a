/**
 * True when a topic name or filter is within the configured levels and length (bytes). Cheap for the common
 * case: the UTF-8 length is computed only when the UTF-16 length does not settle it.
 */
export function withinTopicLimits(topic: string, maxLevels: number, maxLength: number): boolean {
  const n = topic.length;
  if (n * 3 > maxLength && (n > maxLength || Buffer.byteLength(topic) > maxLength)) return false;
  if (n < maxLevels) return true; // fewer characters than allowed levels: cannot have too many
  let levels = 1;
  for (let i = 0; i < n; i++) if (topic.charCodeAt(i) === 0x2f && ++levels > maxLevels) return false;
  return true;
}
