package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// S3Object is a file of an S3 store opened for serving: Object reads and seeks (each
// read after a seek is a ranged GET, pinned to the ETag seen at open), Info is what the
// open saw.
type S3Object struct {
	*minio.Object
	Info minio.ObjectInfo
}

// Open opens a file of the store (a path as in the directory layout) for reading at any
// offset: one HEAD now, the bytes on the first read. A missing object is ErrNotFound, a
// refused one fs.ErrPermission.
func (s *S3) Open(ctx context.Context, name string) (*S3Object, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.s3Error(name, err)
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).StatusCode == http.StatusForbidden {
			return nil, fmt.Errorf("%s/%s: %w", s.name, name, fs.ErrPermission)
		}
		return nil, s.s3Error(name, err)
	}
	return &S3Object{Object: obj, Info: info}, nil
}

// Probe checks that the bucket exists and that its objects can be read with the
// credentials at hand, so that a server fails at start, in one line, rather than on
// every request. file is a file the store should have (its catalogue): reading it is
// the test when the bucket itself may not be looked at (a public bucket lets anonymous
// clients read objects, nothing more).
func (s *S3) Probe(ctx context.Context, file string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	exists, err := s.client.BucketExists(ctx, s.bucket)
	switch {
	case err == nil && !exists:
		return fmt.Errorf("%s: bucket %q does not exist", s.name, s.bucket)
	case err == nil:
		return nil
	case minio.ToErrorResponse(err).StatusCode != http.StatusForbidden:
		return fmt.Errorf("%s: bucket %q: %w", s.name, s.bucket, s.probeError(err))
	}
	// The bucket may not be looked at: a GET says whether its objects may be read, with
	// the service's reason when they may not (a HEAD's answer has none).
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(file), minio.GetObjectOptions{})
	if err == nil {
		defer obj.Close()
		_, err = obj.Read(make([]byte, 1))
	}
	switch code := minio.ToErrorResponse(err).Code; {
	case err == nil || errors.Is(err, io.EOF) || code == minio.NoSuchKey:
		return nil
	case code == minio.NoSuchBucket:
		return fmt.Errorf("%s: bucket %q does not exist", s.name, s.bucket)
	}
	hint := "check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
	if s.anonymous() {
		hint = "no credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or let anyone read the bucket's objects"
	}
	return fmt.Errorf("%s: cannot read the bucket: %w (%s)", s.name, s.probeError(err), hint)
}

// probeError is an error of the service in its own words.
func (s *S3) probeError(err error) error {
	resp := minio.ToErrorResponse(err)
	if resp.Code == "" {
		return cleanNetError(err)
	}
	msg := resp.Message
	if msg == "" {
		msg = resp.Code
	}
	if strings.HasPrefix(msg, strconv.Itoa(resp.StatusCode)) {
		return errors.New(msg) // "400 Bad Request": a HEAD's answer has no more
	}
	return fmt.Errorf("%s (HTTP %d)", msg, resp.StatusCode)
}

// anonymous reports whether requests go unsigned (no credentials found).
func (s *S3) anonymous() bool {
	v, err := s.creds.GetWithContext(nil)
	return err != nil || v.SignerType.IsAnonymous()
}
