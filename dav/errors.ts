/**
 * An error sent to the client as a DAV:error body. `condition` is the Clark name of the
 * precondition or postcondition element (RFC 4918 section 16) when one applies.
 */
export class DavError extends Error {
  constructor(
    readonly status: number,
    readonly condition?: string,
    readonly description?: string,
    /** Extra XML inside the condition element, such as the DAV:href of a conflicting card. */
    readonly inner?: string,
    /** Clark names of further, empty condition elements sent after `condition`, such as a Cardinal rule. */
    readonly extraConditions: string[] = [],
  ) {
    super(description ?? condition ?? `HTTP ${status}`);
  }
}
