package connections

import (
	"context"
	"errors"

	"github.com/mcpes/mcpes/domain"
)

func defaultDial(Options) DialFunc {
	return func(context.Context, DialRequest) (Session, error) {
		return nil, errors.New("no dialer configured")
	}
}

func defaultClassify(error) domain.FailureClass { return domain.FailureUnreachable }
