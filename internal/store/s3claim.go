package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"

	"github.com/minio/minio-go/v7"
)

// CreateFile writes a metadata file only if no object has its name (ExclusiveWriter):
// a conditional PUT with If-None-Match: *, which the service refuses with 412 Precondition
// Failed when the key exists. That refusal is fs.ErrExist, as Dir's hard link gives, so a
// pack that lost a version number to a concurrent pack takes the next one.
//
// Not every service honours the condition (AWS S3 does since August 2024, MinIO and
// versitygw do; some others ignore the header and overwrite). The first claim of a store
// therefore probes the service (see conditionalPuts); when it ignores the condition,
// CreateFile writes nothing and returns ErrNoExclusiveCreate, the Warn of S3Options is
// told once, and the caller falls back to PutFile.
func (s *S3) CreateFile(ctx context.Context, name string, data []byte) error {
	ok, err := s.conditionalPuts(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s/%s: %w", s.name, name, ErrNoExclusiveCreate)
	}
	err = s.putIfAbsent(ctx, name, data)
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	// The client retries a PUT whose answer was lost (a reset connection, a 503 from a
	// proxy); if the first attempt did land, the retry finds our own object. It is ours
	// when it holds exactly our bytes (an index names its version, creation time and, when
	// signed, a signature: two packs do not write the same bytes by chance).
	have, gerr := s.get(ctx, name, int64(len(data)))
	if gerr == nil && bytes.Equal(have, data) {
		return nil
	}
	return err
}

// putIfAbsent is a single conditional PUT of name (fs.ErrExist if the key exists).
func (s *S3) putIfAbsent(ctx context.Context, name string, data []byte) error {
	opt := minio.PutObjectOptions{
		ContentType: "application/octet-stream", SendContentMd5: true,
		// One PUT, never a multipart upload: minio-go would send the condition with the
		// upload's creation, where AWS ignores it (it is checked only on PutObject and
		// CompleteMultipartUpload). An index is far below the 5 GiB a single PUT takes.
		DisableMultipart: true,
	}
	opt.SetMatchETagExcept("*") // If-None-Match: *
	if s.opt.CacheControl != nil {
		opt.CacheControl = s.opt.CacheControl(name)
	}
	_, err := s.client.PutObject(ctx, s.bucket, s.key(name), bytes.NewReader(data), int64(len(data)), opt)
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	// 409 ConditionalRequestConflict is AWS's answer while another conditional write of
	// the same key is in flight: another pack is claiming this number, so it is taken
	// just the same (at worst, if that write then fails, the number stays unused).
	if resp.StatusCode == http.StatusPreconditionFailed || resp.Code == minio.PreconditionFailed ||
		(resp.StatusCode == http.StatusConflict && resp.Code == "ConditionalRequestConflict") {
		return fmt.Errorf("%s/%s: %w", s.name, name, fs.ErrExist)
	}
	if resp.StatusCode == http.StatusNotImplemented { // a service that says it cannot
		return fmt.Errorf("%s/%s: %w (HTTP 501)", s.name, name, ErrNoExclusiveCreate)
	}
	return s.s3Error(name, err)
}

// conditionalPuts reports whether the service honours If-None-Match on PutObject, asking
// it once per store (the first claim): it writes a scratch object beside name, then
// writes it again under the condition. A service that honours it refuses the second
// write (412); one that does not (it ignores the header, or answers 501 Not Implemented)
// would let a claim overwrite another pack's index, so claims fall back to plain writes,
// with one warning. A failure to ask (network, permissions) is an error and is asked
// again next time.
func (s *S3) conditionalPuts(ctx context.Context, near string) (bool, error) {
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if s.claimProbed {
		return s.claimHonoured, nil
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	// A TempPrefix name: Files and serve skip it, like Dir's temporary files.
	probe := path.Join(path.Dir(near), TempPrefix+"claim-probe-"+hex.EncodeToString(rnd[:]))
	if err := s.put(ctx, probe, []byte("nowhere: does this service honour If-None-Match?\n")); err != nil {
		return false, fmt.Errorf("checking that the service honours conditional writes: %w", err)
	}
	defer func() {
		// Removed even when ctx is cancelled: the probe must not outlive the pack.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = s.RemoveFile(rctx, probe)
	}()
	err := s.putIfAbsent(ctx, probe, []byte("overwritten: the service ignores If-None-Match\n"))
	switch {
	case errors.Is(err, fs.ErrExist):
		s.claimHonoured = true
	case err == nil, errors.Is(err, ErrNoExclusiveCreate):
		s.claimHonoured = false
		if s.opt.Warn != nil {
			s.opt.Warn(fmt.Sprintf("%s: the S3 service ignores If-None-Match on PutObject, so version numbers are not claimed exclusively: two packs of one image at once may publish the same version (one overwriting the other); run one pack at a time", s.name))
		}
	default:
		return false, fmt.Errorf("checking that the service honours conditional writes: %w", err)
	}
	s.claimProbed = true
	return s.claimHonoured, nil
}
