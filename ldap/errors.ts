import { ResultCodeError } from 'ldapts';

/** LDAP result codes (RFC 4511 section 4.1.9 and appendix A) by number. */
const RESULT_NAMES: Record<number, string> = {
  0: 'success',
  1: 'operationsError',
  2: 'protocolError',
  3: 'timeLimitExceeded',
  4: 'sizeLimitExceeded',
  7: 'authMethodNotSupported',
  8: 'strongerAuthRequired',
  10: 'referral',
  11: 'adminLimitExceeded',
  12: 'unavailableCriticalExtension',
  13: 'confidentialityRequired',
  32: 'noSuchObject',
  34: 'invalidDNSyntax',
  48: 'inappropriateAuthentication',
  49: 'invalidCredentials',
  50: 'insufficientAccessRights',
  51: 'busy',
  52: 'unavailable',
  53: 'unwillingToPerform',
  54: 'loopDetect',
  80: 'other',
};

export function resultCodeName(code: number): string {
  return RESULT_NAMES[code] ?? `result code ${code}`;
}

/**
 * A directory operation that failed: the server returned an error result, the
 * connection failed or timed out, or the result was incomplete.
 * `resultCode` is the LDAP result code when the server sent one.
 */
export class DirectoryError extends Error {
  override name = 'DirectoryError';

  constructor(
    message: string,
    readonly resultCode?: number,
    /** The network error code, such as ECONNREFUSED, when the connection failed. */
    readonly networkCode?: string,
  ) {
    super(message);
  }

  /** Fields for a pino log line; never includes credentials. */
  logFields(): Record<string, unknown> {
    return {
      resultCode: this.resultCode,
      resultName: this.resultCode === undefined ? undefined : resultCodeName(this.resultCode),
      networkCode: this.networkCode,
    };
  }
}

/** Wraps what ldapts or the socket threw as a DirectoryError naming the operation. */
export function toDirectoryError(error: unknown, operation: string): DirectoryError {
  if (error instanceof DirectoryError) return error;
  if (error instanceof ResultCodeError) {
    const detail = error.message ? `: ${error.message}` : '';
    return new DirectoryError(`${operation} failed with ${resultCodeName(error.code)} (${error.code})${detail}`, error.code);
  }
  const networkCode = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = (error as Error | undefined)?.message ?? String(error);
  return new DirectoryError(`${operation} failed: ${message}`, undefined, typeof networkCode === 'string' ? networkCode : undefined);
}
