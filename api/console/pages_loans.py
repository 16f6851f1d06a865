"""One loan: who holds the key, why, since when, due when (the target of the "due soon"
reminder's link, ``/console/loans/{id}``); the borrower's department scoping applies."""

from __future__ import annotations

import uuid

from fastapi.responses import HTMLResponse, Response

from api.console import labels
from api.console.routes import router
from api.console.web import CtxDep
from api.routes import loans


@router.get("/loans/{loan_id:uuid}", response_class=HTMLResponse)
def loan_page(ctx: CtxDep, loan_id: uuid.UUID) -> Response:
    loan = ctx.rest(loans.get_loan, loan_id=loan_id)
    names = labels.people(ctx.runtime.audit, [loan.borrower_id, loan.issuer_id,
                                              loan.duty_manager_id, loan.returned_by_id,
                                              loan.received_by_id])
    return ctx.render("loan.html", title_id="loan.title", loan=loan, names=names)
