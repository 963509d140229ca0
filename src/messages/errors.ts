/**
 * Typed errors of the wire codec. Every failure to decode hostile bytes ends in a
 * DecodeError with one of these stable codes; nothing else is ever thrown by decode().
 */

/** Every DecodeError code, stable forever (docs/protocol.md "Decode errors"). */
export const DECODE_ERROR_CODES = [
  'NO_FRAMES', // the message had no frame at all
  'TRUNCATED', // frame 0 is shorter than the generic header or than header_length
  'TOO_LARGE', // a frame, or the message as a whole, exceeds the named maximum
  'UNKNOWN_TYPE', // message_type is not in the registry
  'BAD_HEADER_LENGTH', // header_length does not equal sizeof(struct) of that type
  'TRAILING_BYTES', // frame 0 is longer than header_length
  'NONZERO_PADDING', // a padding byte is not zero
  'VALUE_OUT_OF_RANGE', // a u64 above 2^53-1, an enum value not defined, a bad flag
  'BAD_FRAME_COUNT', // the number of trailing frames does not match the struct's counts
  'LENGTH_MISMATCH', // a trailing frame's length does not match its length field
  'BAD_UTF8', // a string frame is not valid UTF-8
] as const;

export type DecodeErrorCode = (typeof DECODE_ERROR_CODES)[number];

export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  constructor(
    readonly code: DecodeErrorCode,
    message: string,
    /** message_type of the offending message, when it could be read */
    readonly messageType?: number,
  ) {
    super(`${code}: ${message}`);
  }
}

export type EncodeErrorCode =
  | 'UNKNOWN_TYPE' // no message of that name
  | 'MISSING_FIELD' // a struct field or trailing frame was not given
  | 'BAD_FIELD' // a field's value has the wrong type or is out of its range
  | 'TOO_LARGE'; // the encoded message would exceed the named maximum

export class EncodeError extends Error {
  override readonly name = 'EncodeError';
  constructor(
    readonly code: EncodeErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}
