package benchkit

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

// Floor keys live under their own hash tag, apart from Signpost's.
const (
	floorResourcePrefix = "{floor}:r:"
	floorStream         = "{floor}:q:intake"
)

// releaseMode sets Gin's process-wide mode once, as httpapi does: the
// benchmarks run the floor and Signpost in one process.
var releaseMode sync.Once

// FloorHandler is the "floor" a referral intake cannot go below: Gin, the
// same body limit as Signpost, a full encoding/json decode of the body into
// map[string]any, and ONE pipelined round trip to Redis writing the body
// (SET) and queueing a job (XADD). No validation, no routing, no logging:
// it is a yardstick, not a gateway. It answers 201 with the body.
//
// It serves POST /fhir/:type and GET /readyz.
func FloorHandler(rdb *redis.Client, maxBody int64) http.Handler {
	if maxBody <= 0 {
		maxBody = 1 << 20
	}
	r := newGin(rdb)
	r.POST("/fhir/:type", func(c *gin.Context) {
		body, ok := readBody(c, maxBody)
		if !ok {
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			c.Status(http.StatusBadRequest)
			return
		}
		id := newID()
		pipe := rdb.Pipeline()
		pipe.Set(c.Request.Context(), floorResourcePrefix+id, body, 0)
		pipe.XAdd(c.Request.Context(), &redis.XAddArgs{Stream: floorStream, Values: []any{"id", id, "type", c.Param("type")}})
		if _, err := pipe.Exec(c.Request.Context()); err != nil {
			c.Status(http.StatusServiceUnavailable)
			return
		}
		c.Header("Location", "/fhir/"+c.Param("type")+"/"+id)
		c.Data(http.StatusCreated, "application/fhir+json; charset=utf-8", body)
	})
	return r
}

// newGin is the Gin engine both yardsticks serve from, in release mode, with
// GET /readyz answering whether Redis answers.
func newGin(rdb *redis.Client) *gin.Engine {
	releaseMode.Do(func() { gin.SetMode(gin.ReleaseMode) })
	r := gin.New()
	r.GET("/readyz", func(c *gin.Context) {
		if err := rdb.Ping(c.Request.Context()).Err(); err != nil {
			c.Status(http.StatusServiceUnavailable)
			return
		}
		c.Status(http.StatusOK)
	})
	return r
}

// readBody reads a request body under Signpost's limit, answering 413 or
// 400 itself when it cannot (ok false).
func readBody(c *gin.Context, maxBody int64) (body []byte, ok bool) {
	if c.Request.ContentLength > maxBody {
		c.Status(http.StatusRequestEntityTooLarge)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			c.Status(http.StatusRequestEntityTooLarge)
			return nil, false
		}
		c.Status(http.StatusBadRequest)
		return nil, false
	}
	return body, true
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}
