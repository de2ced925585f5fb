// Credentials out of what is shown: a store URL's password, for log lines, /api/config and a store's
// description. Its own module so that the stores need nothing of the configuration.

/** Hides the password of a URL, for logs and /api/config. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}
