"""PHR server: birth dates in the date index widened to their calendar month, so that a dump of
the index shows no exact birth date (indexing.whole_months; the sealed body keeps the date).

Revision ID: fhir_0005
Revises: fhir_0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from phr_server.indexing import whole_months

revision = "fhir_0005"
down_revision = "fhir_0004"
branch_labels = None
depends_on = None

_INDEX = sa.table(
    "fhir_date_index",
    sa.column("pk", sa.Integer),
    sa.column("resource_type", sa.String),
    sa.column("param", sa.String),
    sa.column("start_us", sa.BigInteger),
    sa.column("end_us", sa.BigInteger),
)


def upgrade() -> None:
    conn = op.get_bind()
    birth = (_INDEX.c.resource_type == "Patient") & (_INDEX.c.param == "birthdate")
    rows = conn.execute(sa.select(_INDEX.c.pk, _INDEX.c.start_us, _INDEX.c.end_us).where(birth))
    for pk, start, end in rows.all():
        lo, hi = whole_months(start, end)
        if (lo, hi) != (start, end):
            conn.execute(sa.update(_INDEX).where(_INDEX.c.pk == pk).values(start_us=lo, end_us=hi))


def downgrade() -> None:
    pass  # the exact dates are in the sealed bodies only; re-index to restore them
