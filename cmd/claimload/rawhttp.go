package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// rawClient is the load generator's HTTP/1.1 client: one keep-alive
// connection, requests written as prepared bytes, answers read with
// net/http's parser. It costs a fraction of net/http.Client's CPU (no
// per-connection goroutines or channel hand-offs), which matters when the
// load generator shares two cores with what it measures.
type rawClient struct {
	addr string // host:port
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

func newRawClient(base string) *rawClient {
	return &rawClient{addr: base[len("http://"):]}
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// post sends POST path with body and returns the status; the answer's body
// is handed to check when given (else discarded).
func (c *rawClient) post(ctx context.Context, path, contentType string, body []byte, check func([]byte) bool) (int, bool, error) {
	if c.conn == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return 0, false, err
		}
		c.conn, c.br = conn, bufio.NewReaderSize(conn, 16<<10)
	}
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	c.buf = append(c.buf[:0], "POST "...)
	c.buf = append(c.buf, path...)
	c.buf = append(c.buf, " HTTP/1.1\r\nHost: claimsvc\r\nAuthorization: Bearer "+benchAPIKey+"\r\nContent-Type: "...)
	c.buf = append(c.buf, contentType...)
	c.buf = append(c.buf, "\r\nContent-Length: "...)
	c.buf = strconv.AppendInt(c.buf, int64(len(body)), 10)
	c.buf = append(c.buf, "\r\n\r\n"...)
	c.buf = append(c.buf, body...)
	if _, err := c.conn.Write(c.buf); err != nil {
		c.close()
		return 0, false, err
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return 0, false, fmt.Errorf("read answer: %w", err)
	}
	ok := true
	if check != nil {
		b, err := io.ReadAll(res.Body)
		ok = err == nil && check(b)
	} else {
		_, err = io.Copy(io.Discard, res.Body)
	}
	res.Body.Close()
	if err != nil || res.Close {
		c.close()
	}
	return res.StatusCode, ok, err
}
