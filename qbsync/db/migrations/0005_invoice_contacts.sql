-- Invoices made through the integration API, with the contact each was made for: the
-- invoice list shows that contact's name (an invoice made elsewhere shows the individual
-- on its customer). QuickBooks holds the invoice itself; this is only who it was for.
CREATE TABLE invoice_contacts (
    realm_id     text NOT NULL,
    invoice_id   text NOT NULL,
    firm_id      text NOT NULL,
    account_id   text NOT NULL,
    contact_id   text NOT NULL,
    contact_name text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm_id, invoice_id)
);
