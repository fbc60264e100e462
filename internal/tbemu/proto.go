package tbemu

import (
	"errors"
	"unicode/utf8"
)

// A small reader of the protobuf wire format, enough for a device profile with the PROTOBUF
// payload type (ProtoMqttAdaptor, ProtoConverter): the claim messages of ThingsBoard's
// transport.proto,
//
//	message ClaimDevice     { string secretKey = 1; int64 durationMs = 2; }
//	message ClaimDeviceMsg  { string deviceName = 1; ClaimDevice claimRequest = 2; }
//	message GatewayClaimMsg { repeated ClaimDeviceMsg msg = 1; }
//
// and a check that any other payload is well-formed protobuf. Errors are Java protobuf's
// InvalidProtocolBufferException messages; the adaptor turns them into an AdaptorException (the
// "syntax error" path of docs/thingsboard.md §1.2).

const protoMaxDepth = 100 // CodedInputStream's recursion limit for groups

var (
	errProtoTruncated = errors.New("While parsing a protocol message, the input ended unexpectedly in the middle of a field.  This could mean either that the input has been truncated or that an embedded message misreported its own length.")
	errProtoVarint    = errors.New("CodedInputStream encountered a malformed varint.")
	errProtoZeroTag   = errors.New("Protocol message contained an invalid tag (zero).")
	errProtoWireType  = errors.New("Protocol message tag had invalid wire type.")
	errProtoEndGroup  = errors.New("Protocol message end-group tag did not match expected tag.")
	errProtoUTF8      = errors.New("Protocol message had invalid UTF-8.")
	errProtoDepth     = errors.New("Protocol message had too many levels of nesting.  May be malicious.  Use CodedInputStream.setRecursionLimit() to increase the depth limit.")
)

type protoReader struct {
	b   []byte
	off int
}

func (r *protoReader) varint() (uint64, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		if r.off >= len(r.b) {
			return 0, errProtoTruncated
		}
		c := r.b[r.off]
		r.off++
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, nil
		}
	}
	return 0, errProtoVarint
}

// field reads one field: its number, wire type, and for length-delimited fields the bytes. It
// skips unknown fields of every valid wire type, groups included.
func (r *protoReader) field(depth int) (num int, wire int, data []byte, val uint64, err error) {
	tag, err := r.varint()
	if err != nil {
		return 0, 0, nil, 0, err
	}
	if tag>>3 == 0 {
		return 0, 0, nil, 0, errProtoZeroTag
	}
	num, wire = int(tag>>3), int(tag&7)
	switch wire {
	case 0:
		val, err = r.varint()
	case 1:
		err = r.skip(8)
	case 5:
		err = r.skip(4)
	case 2:
		var n uint64
		if n, err = r.varint(); err == nil {
			if n > uint64(len(r.b)-r.off) {
				return 0, 0, nil, 0, errProtoTruncated
			}
			data = r.b[r.off : r.off+int(n)]
			r.off += int(n)
		}
	case 3:
		err = r.skipGroup(num, depth+1)
	case 4:
		err = errProtoEndGroup // an end-group tag outside a group
	default:
		err = errProtoWireType
	}
	return num, wire, data, val, err
}

func (r *protoReader) skip(n int) error {
	if n > len(r.b)-r.off {
		return errProtoTruncated
	}
	r.off += n
	return nil
}

func (r *protoReader) skipGroup(num, depth int) error {
	if depth > protoMaxDepth {
		return errProtoDepth
	}
	for {
		if r.off >= len(r.b) {
			return errProtoTruncated
		}
		save := r.off
		tag, err := r.varint()
		if err != nil {
			return err
		}
		if tag&7 == 4 {
			if int(tag>>3) != num {
				return errProtoEndGroup
			}
			return nil
		}
		r.off = save
		if _, _, _, _, err := r.field(depth); err != nil {
			return err
		}
	}
}

// checkProtoWire reports whether b is a well-formed protobuf message (of unknown type).
func checkProtoWire(b []byte) error {
	r := &protoReader{b: b}
	for r.off < len(r.b) {
		if _, _, _, _, err := r.field(0); err != nil {
			return err
		}
	}
	return nil
}

// protoError is a payload error of the adaptor-exception kind.
func protoError(err error) error {
	return &payloadError{kind: kindSyntax, msg: "com.google.protobuf.InvalidProtocolBufferException: " + err.Error()}
}

// parseProtoClaim is ProtoConverter.convertToClaimDeviceProto: absent fields are proto3 defaults
// ("" and 0, i.e. the system default duration).
func parseProtoClaim(b []byte) (claimRequest, error) {
	var req claimRequest
	r := &protoReader{b: b}
	for r.off < len(r.b) {
		num, wire, data, val, err := r.field(0)
		if err != nil {
			return claimRequest{}, protoError(err)
		}
		switch {
		case num == 1 && wire == 2:
			if !utf8.Valid(data) {
				return claimRequest{}, protoError(errProtoUTF8)
			}
			req.SecretKey = string(data)
		case num == 2 && wire == 0:
			req.DurationMs = int64(val)
		}
	}
	return req, nil
}

// gatewayProtoClaim is one ClaimDeviceMsg of a GatewayClaimMsg.
type gatewayProtoClaim struct {
	deviceName string
	req        claimRequest
	err        error // the claimRequest could not be converted
}

// parseProtoGatewayClaim reads a GatewayClaimMsg.
func parseProtoGatewayClaim(b []byte) ([]gatewayProtoClaim, error) {
	var out []gatewayProtoClaim
	r := &protoReader{b: b}
	for r.off < len(r.b) {
		num, wire, data, _, err := r.field(0)
		if err != nil {
			return nil, protoError(err)
		}
		if num != 1 || wire != 2 {
			continue
		}
		var m gatewayProtoClaim
		var claim []byte // repeated occurrences of a message field are merged
		mr := &protoReader{b: data}
		for mr.off < len(mr.b) {
			fnum, fwire, fdata, _, err := mr.field(0)
			if err != nil {
				return nil, protoError(err)
			}
			switch {
			case fnum == 1 && fwire == 2:
				if !utf8.Valid(fdata) {
					return nil, protoError(errProtoUTF8)
				}
				m.deviceName = string(fdata)
			case fnum == 2 && fwire == 2:
				claim = append(claim, fdata...)
			}
		}
		m.req, m.err = parseProtoClaim(claim)
		out = append(out, m)
	}
	return out, nil
}
